/* The C API inside an MPI application: the host initializes MPI, gives the trainer its
 * communicator, trains on its part of the rows, and checks that the weights equal those of a
 * single-process trainer on the whole data, bitwise. Also checks that bad rows on the last rank
 * fail the call on every rank with that rank's message, and that the host can go on. Exits
 * non-zero on any mismatch. */
#include <mpi.h>
#include <shardprop.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kRows = 301, kInputs = 3 };

static int fail(int rank, const char* what) {
  fprintf(stderr, "c_api_mpi_test rank %d: %s (%s)\n", rank, what, shardprop_last_error());
  return 1;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (!shardprop_mpi_available()) return fail(rank, "the library has no MPI");

  static float x[kRows * kInputs], t[kRows];
  uint32_t state = 5;
  for (int i = 0; i < kRows; ++i) {
    float sum = 0.0f;
    for (int j = 0; j < kInputs; ++j) {
      state = state * 1664525u + 1013904223u;
      x[i * kInputs + j] = (float)(state >> 8) / 16777216.0f - 0.5f;
      sum += x[i * kInputs + j];
    }
    t[i] = sum > 0.0f ? 1.0f : 0.0f;
  }
  /* This rank's rows: an even split of the whole. */
  const int64_t first = (int64_t)kRows * rank / size, end = (int64_t)kRows * (rank + 1) / size;

  shardprop_model *alone = NULL, *together = NULL;
  if (shardprop_model_create("dense(8) relu dense(2)", kInputs, "xent", 4, &alone) ||
      shardprop_model_create("dense(8) relu dense(2)", kInputs, "xent", 4, &together)) {
    return fail(rank, "model_create");
  }
  shardprop_trainer_settings settings;
  shardprop_trainer_settings_init(&settings);
  settings.threads = 1;
  settings.batch_size = 40;
  settings.shards = 4;
  settings.learning_rate = 0.1f;
  settings.momentum = 0.9f;
  shardprop_trainer *single = NULL, *distributed = NULL;
  if (shardprop_trainer_create(alone, &settings, &single)) return fail(rank, "trainer_create");
  if (shardprop_trainer_create_mpi(together, &settings, (int64_t)MPI_Comm_c2f(MPI_COMM_WORLD),
                                   &distributed)) {
    return fail(rank, "trainer_create_mpi");
  }
  shardprop_metrics a, b;
  for (int epoch = 0; epoch < 3; ++epoch) {
    if (shardprop_trainer_train_epoch(single, x, t, kRows, kInputs, 1, &a)) {
      return fail(rank, "train_epoch");
    }
    if (shardprop_trainer_train_epoch_part(distributed, x + first * kInputs, t + first, end - first,
                                           kInputs, 1, first, kRows, &b)) {
      return fail(rank, "train_epoch_part");
    }
    if (a.loss != b.loss) return fail(rank, "the epoch losses differ");
  }
  int64_t count = 0;
  shardprop_model_parameter_count(alone, &count);
  float* wa = malloc((size_t)count * sizeof(float));
  float* wb = malloc((size_t)count * sizeof(float));
  shardprop_model_copy_parameters(alone, wa, count);
  shardprop_model_copy_parameters(together, wb, count);
  if (memcmp(wa, wb, (size_t)count * sizeof(float)) != 0) return fail(rank, "the weights differ");

  /* A class index out of range on the last rank: every rank gets the same error. */
  static float bad_t[kRows];
  memcpy(bad_t, t, sizeof t);
  if (rank == size - 1) bad_t[end - 1] = 7.0f;
  const shardprop_status status = shardprop_trainer_train_epoch_part(
      distributed, x + first * kInputs, bad_t + first, end - first, kInputs, 1, first, kRows, &b);
  char expected[32];
  snprintf(expected, sizeof expected, "rank %d: ", size - 1);
  if (status != SHARDPROP_ERROR_DATA) return fail(rank, "bad rows did not fail with a data error");
  if (size > 1 && strstr(shardprop_last_error(), expected) == NULL) {
    return fail(rank, "the message does not name the failing rank");
  }
  /* The host goes on: a good epoch still works on every rank. */
  if (shardprop_trainer_train_epoch_part(distributed, x + first * kInputs, t + first, end - first,
                                         kInputs, 1, first, kRows, &b)) {
    return fail(rank, "the epoch after the error");
  }
  free(wa);
  free(wb);
  shardprop_trainer_free(single);
  shardprop_trainer_free(distributed);
  shardprop_model_free(alone);
  shardprop_model_free(together);
  MPI_Finalize();
  if (rank == 0) printf("c_api_mpi_test: %d ranks equal one process, bitwise\n", size);
  return 0;
}
