/* The C API of shardprop: models, trainers, evaluation, prediction and checkpoints behind opaque
 * handles, for C programs and (through the module in shardprop.f90) Fortran ones.
 *
 * Conventions, for every function below unless it says otherwise:
 * - It returns a shardprop_status: SHARDPROP_OK (0) on success, else the kind of failure. The
 *   message of the calling thread's last failure is then shardprop_last_error(). No C++ exception
 *   ever crosses this boundary, and nothing aborts the process on bad input.
 * - Out-parameters are written only on success.
 * - Arrays are row-major, caller-owned and only read during the call (never kept): features are
 *   [rows, feature_count] floats, targets [rows, target_width] (class indices 0..outputs-1 stored
 *   as floats for the "xent" loss, target_width 1; target values for "mse" and "bce",
 *   target_width = outputs). A Fortran array x(feature_count, rows) has exactly this layout.
 * - Strings are NUL-terminated UTF-8, only read during the call.
 * - Handles are created by a *_create or *_load function and released by its *_free function,
 *   which accepts NULL. A trainer keeps its model alive: the model handle may be freed first.
 * - There is no global mutable state. Different handles may be used from different threads at
 *   once. One handle is used by one thread at a time, and a model is not used elsewhere while a
 *   trainer of it trains.
 * - Threads: a trainer with settings.threads = N > 0 runs in a TBB arena of N threads it owns;
 *   0 runs in the calling thread's current arena (all cores, unless the caller made an arena).
 *   Functions with a `threads` argument treat it the same way. Results never depend on it.
 */
#ifndef SHARDPROP_H
#define SHARDPROP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a call returns. */
typedef enum shardprop_status {
  SHARDPROP_OK = 0,
  /* A NULL handle or pointer, a setting out of range, a bad layer spec or loss name, or an array
   * whose shape does not fit the model. */
  SHARDPROP_ERROR_ARGUMENT = 1,
  /* Values the operation cannot use: a target that is not a class index (xent) or not in [0, 1]
   * (bce), a value that is not finite, a loss or gradient that became infinite or NaN. */
  SHARDPROP_ERROR_DATA = 2,
  /* A file that cannot be read or written, or is not a valid checkpoint for this use (damaged,
   * another architecture, another optimizer). A failed write leaves any existing file as it was. */
  SHARDPROP_ERROR_FILE = 3,
  /* Memory could not be allocated. */
  SHARDPROP_ERROR_MEMORY = 4,
  /* A bug in shardprop: please report it with the message. */
  SHARDPROP_ERROR_INTERNAL = 5
} shardprop_status;

/* The library version, "MAJOR.MINOR.PATCH" (static storage; never fails). */
const char* shardprop_version(void);

/* The message of the calling thread's most recent failed call ("" if none). The pointer stays
 * valid until the next failing call on the same thread. Never fails. */
const char* shardprop_last_error(void);

/* --- Models ------------------------------------------------------------------------------- */

typedef struct shardprop_model shardprop_model;

/* A network of `inputs` features with the layer stack `layers` in the text grammar of
 * docs/model-spec.md (for example "dense(64) bn relu dropout(0.1) dense(10)"; the last dense
 * width is the output count) and the loss "mse", "xent" (softmax cross-entropy) or "bce" (sigmoid
 * binary cross-entropy). Parameters are initialised from `seed` (Xavier/He uniform, biases 0).
 * On success *model is a new handle the caller frees with shardprop_model_free. */
shardprop_status shardprop_model_create(const char* layers, int inputs, const char* loss,
                                        uint64_t seed, shardprop_model** model);

/* Loads the architecture and weights of a file written by shardprop_checkpoint_save or
 * `shardprop train --out` (checksum and every tensor verified). */
shardprop_status shardprop_model_load(const char* path, shardprop_model** model);

/* Releases the handle (NULL is ignored). A trainer still using the model keeps it alive. */
void shardprop_model_free(shardprop_model* model);

/* Sizes: features per row, outputs per row, target values per row (1 for xent, outputs
 * otherwise) and the number of float parameters (weights, biases, batch-norm tensors). */
shardprop_status shardprop_model_inputs(const shardprop_model* model, int* inputs);
shardprop_status shardprop_model_outputs(const shardprop_model* model, int* outputs);
shardprop_status shardprop_model_target_width(const shardprop_model* model, int* target_width);
shardprop_status shardprop_model_parameter_count(const shardprop_model* model, int64_t* count);

/* Copies the float parameters (weights, biases, batch-norm γ, β and running statistics) in the
 * order of the checkpoint's tensors into `values`, which holds `count` floats (at least
 * shardprop_model_parameter_count). */
shardprop_status shardprop_model_copy_parameters(const shardprop_model* model, float* values,
                                                 int64_t count);

/* What shardprop_model_predict writes per output. */
typedef enum shardprop_prediction {
  SHARDPROP_PREDICT_RAW = 0,          /* the network's outputs (logits for xent and bce) */
  SHARDPROP_PREDICT_PROBABILITIES = 1 /* xent: softmax per row; bce: sigmoid; mse: as RAW */
} shardprop_prediction;

/* Inference (batch norm uses its running statistics; dropout passes values through): writes
 * what `kind` (a shardprop_prediction) says, [rows, outputs] floats to `outputs`, which holds
 * `output_count` floats (at least rows * outputs). feature_count must equal the model's inputs. */
shardprop_status shardprop_model_predict(const shardprop_model* model, const float* features,
                                         int64_t rows, int feature_count, int kind, float* outputs,
                                         int64_t output_count, int threads);

/* Loss and quality of a model on labelled rows. */
typedef struct shardprop_metrics {
  double loss;     /* data loss averaged over rows (weight decay not included) */
  double accuracy; /* xent: argmax == class; bce: (logit > 0) == (target > 0.5); 0 for mse */
  double rmse;     /* mse: root mean squared error over all outputs; 0 for xent and bce */
  int64_t rows;    /* rows the numbers cover */
} shardprop_metrics;

/* The model's metrics on these rows in inference mode (the model is not changed). */
shardprop_status shardprop_model_evaluate(const shardprop_model* model, const float* features,
                                          const float* targets, int64_t rows, int feature_count,
                                          int target_width, int threads,
                                          shardprop_metrics* metrics);

/* --- Trainers ----------------------------------------------------------------------------- */

typedef struct shardprop_trainer shardprop_trainer;

typedef enum shardprop_optimizer {
  SHARDPROP_OPTIMIZER_SGD = 0, /* torch.optim.SGD: optional momentum and Nesterov */
  SHARDPROP_OPTIMIZER_ADAM = 1 /* torch.optim.Adam */
} shardprop_optimizer;

typedef enum shardprop_schedule {
  SHARDPROP_SCHEDULE_CONSTANT = 0, /* η */
  SHARDPROP_SCHEDULE_STEP = 1,     /* η·γ^⌊epoch/schedule_step_epochs⌋ */
  SHARDPROP_SCHEDULE_COSINE = 2    /* η·(1 + cos(π·epoch/cosine_epochs))/2 */
} shardprop_schedule;

/* Everything a trainer is built with. Fill it with shardprop_trainer_settings_init, then change
 * fields. Batch normalization and dropout are layers of the model's spec ("bn", "dropout(P)"). */
typedef struct shardprop_trainer_settings {
  int threads;          /* 0: the calling thread's arena; N: an arena of N threads (default 0) */
  int shards;           /* shards per minibatch, 0: automatic from model and batch (default 0) */
  int batch_size;       /* rows per minibatch (default 32) */
  float learning_rate;  /* η (default 0.01) */
  float weight_decay;   /* λ, ∂J/∂W += λW for weights, not biases (default 0) */
  uint64_t seed;        /* the per-epoch shuffle and dropout masks (default 1) */
  int shuffle;          /* nonzero: shuffle each epoch by (seed, epoch) (default 1) */
  int optimizer;        /* a shardprop_optimizer (default SGD) */
  float momentum;       /* SGD momentum μ in [0, 1) (default 0) */
  int nesterov;         /* nonzero: Nesterov momentum (needs momentum > 0) (default 0) */
  float adam_beta1;     /* default 0.9 */
  float adam_beta2;     /* default 0.999 */
  float adam_epsilon;   /* default 1e-8 */
  float clip_grad_norm; /* > 0: clip the minibatch gradient's L2 norm to this (default 0) */
  int schedule;         /* a shardprop_schedule (default CONSTANT) */
  int schedule_step_epochs; /* STEP: epochs between decays (default 10) */
  float schedule_gamma;     /* STEP: decay factor (default 0.1) */
  int cosine_epochs;        /* COSINE: epochs over which η falls to 0 (> 0 for COSINE) */
} shardprop_trainer_settings;

/* Writes the defaults into *settings. */
shardprop_status shardprop_trainer_settings_init(shardprop_trainer_settings* settings);

/* A trainer of `model` (which it keeps alive) with these settings, every buffer sized once.
 * Settings the model rejects give SHARDPROP_ERROR_ARGUMENT and the reason. */
shardprop_status shardprop_trainer_create(shardprop_model* model,
                                          const shardprop_trainer_settings* settings,
                                          shardprop_trainer** trainer);

/* Releases the handle (NULL is ignored), and the model if nothing else holds it. */
void shardprop_trainer_free(shardprop_trainer* trainer);

/* One optimizer step on a minibatch of 1..batch_size rows (at least 2 with batch norm). *loss,
 * if loss is not NULL, receives the minibatch's mean loss before the update. */
shardprop_status shardprop_trainer_step(shardprop_trainer* trainer, const float* features,
                                        const float* targets, int64_t rows, int feature_count,
                                        int target_width, double* loss);

/* One pass over the rows in minibatches of batch_size (the last may be smaller), shuffled by
 * (seed, epoch) unless settings.shuffle is 0. *metrics, if not NULL, receives the mean loss
 * and accuracy/RMSE of the epoch's steps, taken while the weights change. The arrays are
 * copied once per call. */
shardprop_status shardprop_trainer_train_epoch(shardprop_trainer* trainer, const float* features,
                                               const float* targets, int64_t rows,
                                               int feature_count, int target_width,
                                               shardprop_metrics* metrics);

/* --- Training across MPI ranks ------------------------------------------------------------ */

/* 1 when the library was built with MPI, 0 otherwise. */
int shardprop_mpi_available(void);

/* shardprop_trainer_create on the ranks of an MPI communicator, given by its Fortran handle:
 * MPI_Comm_c2f(comm) from C, the integer communicator itself from Fortran. MPI must be
 * initialized; the trainer works on its own duplicate of the communicator. Every rank calls it
 * with the same model and settings, and then makes the same trainer calls in the same order
 * (each is collective). batch_size and shards are global; results are bitwise those of one
 * process. shardprop_trainer_step takes the same whole minibatch on every rank. Without MPI in
 * the library: SHARDPROP_ERROR_ARGUMENT. */
shardprop_status shardprop_trainer_create_mpi(shardprop_model* model,
                                              const shardprop_trainer_settings* settings,
                                              int64_t mpi_comm, shardprop_trainer** trainer);

/* shardprop_trainer_train_epoch over a dataset spread across the ranks: this rank holds `rows`
 * rows (0 allowed) that are rows first_row .. first_row + rows - 1 of a whole of total_rows
 * rows; ranks hold consecutive runs in rank order. Rows move between ranks as the global
 * minibatches need them. Bad rows on any rank fail the call on every rank, with the same status
 * and message ("rank R: ..."). */
shardprop_status shardprop_trainer_train_epoch_part(shardprop_trainer* trainer,
                                                    const float* features, const float* targets,
                                                    int64_t rows, int feature_count,
                                                    int target_width, int64_t first_row,
                                                    int64_t total_rows, shardprop_metrics* metrics);

/* Epochs and steps trained so far (restored by shardprop_trainer_load_state). */
shardprop_status shardprop_trainer_progress(const shardprop_trainer* trainer, int* epochs,
                                            int64_t* steps);

/* --- Checkpoints -------------------------------------------------------------------------- */

/* Writes the model as safetensors with PyTorch nn.Sequential tensor names, atomically (an
 * existing file is replaced whole or not at all). With a trainer (not NULL) of this model it is
 * a training checkpoint: the optimizer state and the epoch and step counters are stored too. */
shardprop_status shardprop_checkpoint_save(const shardprop_model* model,
                                           const shardprop_trainer* trainer, const char* path);

/* Restores a training checkpoint's optimizer state and counters into a trainer whose model was
 * loaded from the same file (shardprop_model_load) and whose settings are those of the saved
 * run: training then continues bitwise as the uninterrupted run would. The trainer is unchanged
 * on error. */
shardprop_status shardprop_trainer_load_state(shardprop_trainer* trainer, const char* path);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHARDPROP_H */
