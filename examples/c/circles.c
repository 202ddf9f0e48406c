/* Trains a small network through the C API on two concentric rings it makes itself, saves a
 * checkpoint, reloads it, and exits non-zero unless the reloaded model classifies 95% of a
 * test set correctly. */
#include <shardprop.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { kTrainRows = 2000, kTestRows = 1000 };

/* Points on a ring of radius 0.5 (class 0) or 1.0 (class 1), with a little noise. */
static void make_rings(float* features, float* targets, int rows, uint32_t seed) {
  uint32_t state = seed;
  for (int i = 0; i < rows; ++i) {
    state = state * 1664525u + 1013904223u; /* a small LCG: the example needs no library */
    const float angle = (float)(state >> 8) / 16777216.0f * 6.2831853f;
    state = state * 1664525u + 1013904223u;
    const float jitter = ((float)(state >> 8) / 16777216.0f - 0.5f) * 0.2f;
    const int ring = i % 2;
    const float radius = (ring ? 1.0f : 0.5f) + jitter;
    features[2 * i] = radius * cosf(angle);
    features[2 * i + 1] = radius * sinf(angle);
    targets[i] = (float)ring; /* xent: the class index as a float */
  }
}

/* Prints the failed call's status and message; returns 1 for main. */
static int fail(const char* what, shardprop_status status) {
  fprintf(stderr, "circles: %s failed (status %d): %s\n", what, (int)status,
          shardprop_last_error());
  return 1;
}

int main(void) {
  static float train_x[kTrainRows * 2], train_t[kTrainRows];
  static float test_x[kTestRows * 2], test_t[kTestRows];
  make_rings(train_x, train_t, kTrainRows, 1);
  make_rings(test_x, test_t, kTestRows, 2);

  shardprop_model* model = NULL;
  shardprop_status status =
      shardprop_model_create("dense(32) relu dense(32) relu dense(2)", 2, "xent", 7, &model);
  if (status != SHARDPROP_OK) return fail("shardprop_model_create", status);

  shardprop_trainer_settings settings;
  shardprop_trainer_settings_init(&settings);
  settings.batch_size = 64;
  settings.learning_rate = 0.01f;
  settings.optimizer = SHARDPROP_OPTIMIZER_ADAM;
  settings.threads = 2;
  shardprop_trainer* trainer = NULL;
  status = shardprop_trainer_create(model, &settings, &trainer);
  if (status != SHARDPROP_OK) return fail("shardprop_trainer_create", status);

  shardprop_metrics epoch;
  for (int e = 0; e < 40 && status == SHARDPROP_OK; ++e) {
    status = shardprop_trainer_train_epoch(trainer, train_x, train_t, kTrainRows, 2, 1, &epoch);
  }
  if (status != SHARDPROP_OK) return fail("shardprop_trainer_train_epoch", status);
  status = shardprop_checkpoint_save(model, trainer, "circles.safetensors");
  if (status != SHARDPROP_OK) return fail("shardprop_checkpoint_save", status);
  shardprop_trainer_free(trainer);
  shardprop_model_free(model);

  shardprop_model* loaded = NULL;
  status = shardprop_model_load("circles.safetensors", &loaded);
  if (status != SHARDPROP_OK) return fail("shardprop_model_load", status);
  shardprop_metrics test;
  status = shardprop_model_evaluate(loaded, test_x, test_t, kTestRows, 2, 1, 0, &test);
  if (status != SHARDPROP_OK) return fail("shardprop_model_evaluate", status);

  float probabilities[2];
  status = shardprop_model_predict(loaded, test_x, 1, 2, SHARDPROP_PREDICT_PROBABILITIES,
                                   probabilities, 2, 1);
  if (status != SHARDPROP_OK) return fail("shardprop_model_predict", status);
  shardprop_model_free(loaded);

  printf("shardprop %s: last epoch loss %.3g, test accuracy %.2f%%, P(ring %d) = %.3f\n",
         shardprop_version(), epoch.loss, 100.0 * test.accuracy, (int)test_t[0],
         probabilities[(int)test_t[0]]);
  return test.accuracy >= 0.95 ? EXIT_SUCCESS : EXIT_FAILURE;
}
