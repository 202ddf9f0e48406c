// The C API (shardprop.h) over the C++ one: handles own shared C++ objects, every entry point
// checks its pointers and shapes, and every exception becomes a status plus a thread-local
// message, so nothing unwinds into C or Fortran frames.
#include "shardprop.h"

#include <tbb/task_arena.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "shardprop/checkpoint.hpp"
#include "shardprop/communicator.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/error.hpp"
#include "shardprop/evaluation.hpp"
#include "shardprop/model.hpp"
#include "shardprop/prediction.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"

struct shardprop_model {
  std::shared_ptr<shardprop::Model> model;
};

struct shardprop_trainer {
  std::shared_ptr<shardprop::Model> model;  // kept alive for the trainer, which refers to it
  std::unique_ptr<shardprop::Trainer> trainer;
};

namespace {

thread_local std::string last_error;

// A failure the C layer itself detects (a NULL pointer, a shape), with the status it means.
struct CallError {
  shardprop_status status;
  std::string message;
};

// Runs `body`; maps what it throws to a status. `library_error` is what a shardprop::Error means
// in this call (bad arguments when building, bad data when training, a bad file when loading).
template <class Body>
shardprop_status guarded(const char* function, shardprop_status library_error, Body&& body) {
  try {
    body();
    return SHARDPROP_OK;
  } catch (const CallError& e) {
    last_error = std::string(function) + ": " + e.message;
    return e.status;
  } catch (const shardprop::Error& e) {
    last_error = std::string(function) + ": " + e.what();
    return library_error;
  } catch (const std::bad_alloc&) {
    last_error = std::string(function) + ": out of memory";
    return SHARDPROP_ERROR_MEMORY;
  } catch (const std::exception& e) {
    last_error = std::string(function) + ": internal error: " + e.what();
    return SHARDPROP_ERROR_INTERNAL;
  } catch (...) {
    last_error = std::string(function) + ": internal error: unknown exception";
    return SHARDPROP_ERROR_INTERNAL;
  }
}

// The message is built only on failure: a tiny step costs well under a microsecond, and string
// building on every call would double it.
template <class Message>
void require(bool condition, Message&& message) {
  if (!condition) throw CallError{SHARDPROP_ERROR_ARGUMENT, message()};
}

template <class T>
void require_pointer(const T* pointer, const char* name) {
  if (pointer == nullptr) throw CallError{SHARDPROP_ERROR_ARGUMENT, std::string(name) + " is NULL"};
}

const shardprop::Model& model_of(const shardprop_model* handle) {
  require_pointer(handle, "model");
  return *handle->model;
}

shardprop::Trainer& trainer_of(const shardprop_trainer* handle) {
  require_pointer(handle, "trainer");
  return *handle->trainer;
}

// Float tensors, packed in tensor order (the flat parameter array pads each tensor to 64 bytes).
std::size_t float_parameter_count(const shardprop::Model& model) {
  std::size_t count = 0;
  for (const shardprop::TensorInfo& t : model.tensors()) {
    if (t.role != shardprop::TensorRole::batch_counter) count += t.size;
  }
  return count;
}

int target_width_of(const shardprop::Model& model) {
  return model.spec().loss == shardprop::Loss::xent ? 1 : model.outputs();
}

// Checks rows × width arrays against what the model takes; returns the element counts.
struct Shape {
  std::size_t features = 0;
  std::size_t targets = 0;
};

Shape check_rows(const shardprop::Model& model, const float* features, const float* targets,
                 std::int64_t rows, int feature_count, int target_width, bool need_targets) {
  require(rows >= 0, [&] { return "rows is " + std::to_string(rows) + ", not a count"; });
  require(feature_count == model.inputs(), [&] {
    return "feature_count is " + std::to_string(feature_count) + ", the model takes " +
           std::to_string(model.inputs()) + " features per row";
  });
  Shape shape;
  shape.features = static_cast<std::size_t>(rows) * static_cast<std::size_t>(feature_count);
  require(rows == 0 || features != nullptr, [&] { return "features is NULL"; });
  if (need_targets) {
    require(target_width == target_width_of(model), [&] {
      return "target_width is " + std::to_string(target_width) + ", the model's " +
             std::string(shardprop::to_string(model.spec().loss)) + " loss needs " +
             std::to_string(target_width_of(model)) + " target values per row";
    });
    shape.targets = static_cast<std::size_t>(rows) * static_cast<std::size_t>(target_width);
    require(rows == 0 || targets != nullptr, [&] { return "targets is NULL"; });
  }
  return shape;
}

shardprop::Dataset dataset_of(const shardprop::Model& model, const float* features,
                              const float* targets, std::int64_t rows, int feature_count,
                              int target_width) {
  const Shape shape = check_rows(model, features, targets, rows, feature_count, target_width,
                                 /*need_targets=*/true);
  shardprop::Dataset data;
  data.rows = rows;
  data.feature_count = feature_count;
  data.target_width = target_width;
  data.features.assign(features, features + shape.features);
  data.targets.assign(targets, targets + shape.targets);
  return data;
}

// Runs f in an arena of `threads` workers, or in the caller's arena for 0.
template <class F>
void run_with_threads(int threads, F&& f) {
  require(threads >= 0,
          [&] { return "threads is " + std::to_string(threads) + ", not 0 or a positive count"; });
  if (threads == 0) {
    f();
    return;
  }
  tbb::task_arena arena(threads);
  arena.execute(f);
}

void write_metrics(const shardprop::Metrics& m, shardprop::Loss loss, shardprop_metrics* out) {
  if (out == nullptr) return;
  out->loss = m.loss;
  out->accuracy = loss == shardprop::Loss::mse ? 0.0 : m.accuracy;
  out->rmse = loss == shardprop::Loss::mse ? m.rmse : 0.0;
  out->rows = m.rows;
}

shardprop::TrainerSettings to_settings(const shardprop_trainer_settings& c) {
  shardprop::TrainerSettings s;
  s.threads = c.threads;
  s.shards = c.shards;
  s.batch_size = c.batch_size;
  s.learning_rate = c.learning_rate;
  s.weight_decay = c.weight_decay;
  s.seed = c.seed;
  s.shuffle = c.shuffle != 0;
  switch (c.optimizer) {
    case SHARDPROP_OPTIMIZER_SGD:
      s.optimizer = shardprop::Optimizer::sgd;
      break;
    case SHARDPROP_OPTIMIZER_ADAM:
      s.optimizer = shardprop::Optimizer::adam;
      break;
    default:
      require(false, [&] {
        return "optimizer is " + std::to_string(c.optimizer) + ", not SGD (0) or ADAM (1)";
      });
  }
  s.momentum = c.momentum;
  s.nesterov = c.nesterov != 0;
  s.adam_beta1 = c.adam_beta1;
  s.adam_beta2 = c.adam_beta2;
  s.adam_epsilon = c.adam_epsilon;
  s.clip_grad_norm = c.clip_grad_norm;
  switch (c.schedule) {
    case SHARDPROP_SCHEDULE_CONSTANT:
      s.schedule = shardprop::LearningRateSchedule::constant;
      break;
    case SHARDPROP_SCHEDULE_STEP:
      s.schedule = shardprop::LearningRateSchedule::step;
      break;
    case SHARDPROP_SCHEDULE_COSINE:
      s.schedule = shardprop::LearningRateSchedule::cosine;
      break;
    default:
      require(false, [&] {
        return "schedule is " + std::to_string(c.schedule) +
               ", not CONSTANT (0), STEP (1) or COSINE (2)";
      });
  }
  s.schedule_step_epochs = c.schedule_step_epochs;
  s.schedule_gamma = c.schedule_gamma;
  s.cosine_epochs = c.cosine_epochs;
  return s;
}

}  // namespace

extern "C" {

const char* shardprop_version(void) {
  static const std::string version = shardprop::version();
  return version.c_str();
}

const char* shardprop_last_error(void) { return last_error.c_str(); }

shardprop_status shardprop_model_create(const char* layers, int inputs, const char* loss,
                                        uint64_t seed, shardprop_model** model) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    require_pointer(layers, "layers");
    require_pointer(loss, "loss");
    require_pointer(model, "model");
    shardprop::ModelSpec spec;
    spec.inputs = inputs;
    spec.layers = shardprop::parse_layers(layers);
    spec.loss = shardprop::parse_loss(loss);
    auto handle = std::make_unique<shardprop_model>();
    handle->model = std::make_shared<shardprop::Model>(std::move(spec));
    handle->model->initialize(seed);
    *model = handle.release();
  });
}

shardprop_status shardprop_model_load(const char* path, shardprop_model** model) {
  return guarded(__func__, SHARDPROP_ERROR_FILE, [&] {
    require_pointer(path, "path");
    require_pointer(model, "model");
    auto handle = std::make_unique<shardprop_model>();
    handle->model = std::make_shared<shardprop::Model>(shardprop::load_model(path));
    *model = handle.release();
  });
}

void shardprop_model_free(shardprop_model* model) { delete model; }

shardprop_status shardprop_model_inputs(const shardprop_model* model, int* inputs) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    const shardprop::Model& m = model_of(model);
    require_pointer(inputs, "inputs");
    *inputs = m.inputs();
  });
}

shardprop_status shardprop_model_outputs(const shardprop_model* model, int* outputs) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    const shardprop::Model& m = model_of(model);
    require_pointer(outputs, "outputs");
    *outputs = m.outputs();
  });
}

shardprop_status shardprop_model_target_width(const shardprop_model* model, int* target_width) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    const shardprop::Model& m = model_of(model);
    require_pointer(target_width, "target_width");
    *target_width = target_width_of(m);
  });
}

shardprop_status shardprop_model_parameter_count(const shardprop_model* model, int64_t* count) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    const shardprop::Model& m = model_of(model);
    require_pointer(count, "count");
    *count = static_cast<int64_t>(float_parameter_count(m));
  });
}

shardprop_status shardprop_model_copy_parameters(const shardprop_model* model, float* values,
                                                 int64_t count) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    const shardprop::Model& m = model_of(model);
    const std::size_t needed = float_parameter_count(m);
    require(count >= 0 && static_cast<std::size_t>(count) >= needed, [&] {
      return "values holds " + std::to_string(count) + " floats, the model has " +
             std::to_string(needed) + " parameters";
    });
    require_pointer(values, "values");
    for (const shardprop::TensorInfo& t : m.tensors()) {
      if (t.role == shardprop::TensorRole::batch_counter) continue;
      values = std::copy_n(m.parameters().data() + t.offset, t.size, values);
    }
  });
}

shardprop_status shardprop_model_predict(const shardprop_model* model, const float* features,
                                         int64_t rows, int feature_count, int kind, float* outputs,
                                         int64_t output_count, int threads) {
  return guarded(__func__, SHARDPROP_ERROR_DATA, [&] {
    const shardprop::Model& m = model_of(model);
    const Shape shape = check_rows(m, features, nullptr, rows, feature_count, 0, false);
    const std::size_t needed =
        static_cast<std::size_t>(rows) * static_cast<std::size_t>(m.outputs());
    require(kind == SHARDPROP_PREDICT_RAW || kind == SHARDPROP_PREDICT_PROBABILITIES, [&] {
      return "kind is " + std::to_string(kind) + ", not RAW (0) or PROBABILITIES (1)";
    });
    require(output_count >= 0 && static_cast<std::size_t>(output_count) >= needed, [&] {
      return "outputs holds " + std::to_string(output_count) + " floats, " + std::to_string(rows) +
             " rows need " + std::to_string(needed);
    });
    require(rows == 0 || outputs != nullptr, [&] { return "outputs is NULL"; });
    if (rows == 0) return;
    const std::span<const float> x(features, shape.features);
    const std::span<float> y(outputs, needed);
    run_with_threads(threads, [&] {
      if (kind == SHARDPROP_PREDICT_PROBABILITIES) {
        shardprop::predict_outputs(m, x, y);
      } else {
        m.predict(x, y);
      }
    });
  });
}

shardprop_status shardprop_model_evaluate(const shardprop_model* model, const float* features,
                                          const float* targets, int64_t rows, int feature_count,
                                          int target_width, int threads,
                                          shardprop_metrics* metrics) {
  return guarded(__func__, SHARDPROP_ERROR_DATA, [&] {
    const shardprop::Model& m = model_of(model);
    require_pointer(metrics, "metrics");
    const shardprop::Dataset data =
        dataset_of(m, features, targets, rows, feature_count, target_width);
    shardprop::EvaluationReport report;
    run_with_threads(threads, [&] { report = shardprop::evaluate_model(m, data); });
    metrics->loss = report.mean_loss;
    metrics->accuracy = report.accuracy;
    metrics->rmse = report.overall.rmse;  // 0 for classifiers, as documented
    metrics->rows = report.rows;
  });
}

shardprop_status shardprop_trainer_settings_init(shardprop_trainer_settings* settings) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    require_pointer(settings, "settings");
    const shardprop::TrainerSettings d;
    shardprop_trainer_settings s{};
    s.threads = d.threads;
    s.shards = d.shards;
    s.batch_size = d.batch_size;
    s.learning_rate = d.learning_rate;
    s.weight_decay = d.weight_decay;
    s.seed = d.seed;
    s.shuffle = d.shuffle ? 1 : 0;
    s.optimizer = SHARDPROP_OPTIMIZER_SGD;
    s.momentum = d.momentum;
    s.nesterov = d.nesterov ? 1 : 0;
    s.adam_beta1 = d.adam_beta1;
    s.adam_beta2 = d.adam_beta2;
    s.adam_epsilon = d.adam_epsilon;
    s.clip_grad_norm = d.clip_grad_norm;
    s.schedule = SHARDPROP_SCHEDULE_CONSTANT;
    s.schedule_step_epochs = d.schedule_step_epochs;
    s.schedule_gamma = d.schedule_gamma;
    s.cosine_epochs = d.cosine_epochs;
    *settings = s;
  });
}

shardprop_status shardprop_trainer_create(shardprop_model* model,
                                          const shardprop_trainer_settings* settings,
                                          shardprop_trainer** trainer) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    require_pointer(model, "model");
    require_pointer(settings, "settings");
    require_pointer(trainer, "trainer");
    auto handle = std::make_unique<shardprop_trainer>();
    handle->model = model->model;
    handle->trainer = std::make_unique<shardprop::Trainer>(*handle->model, to_settings(*settings));
    *trainer = handle.release();
  });
}

void shardprop_trainer_free(shardprop_trainer* trainer) { delete trainer; }

shardprop_status shardprop_trainer_step(shardprop_trainer* trainer, const float* features,
                                        const float* targets, int64_t rows, int feature_count,
                                        int target_width, double* loss) {
  return guarded(__func__, SHARDPROP_ERROR_DATA, [&] {
    shardprop::Trainer& t = trainer_of(trainer);
    const Shape shape = check_rows(*trainer->model, features, targets, rows, feature_count,
                                   target_width, /*need_targets=*/true);
    require(rows >= 1 && rows <= t.settings().batch_size, [&] {
      return "rows is " + std::to_string(rows) + "; a step takes 1 to batch_size (" +
             std::to_string(t.settings().batch_size) + ") rows";
    });
    const double value = t.step(std::span<const float>(features, shape.features),
                                std::span<const float>(targets, shape.targets));
    if (loss != nullptr) *loss = value;
  });
}

shardprop_status shardprop_trainer_train_epoch(shardprop_trainer* trainer, const float* features,
                                               const float* targets, int64_t rows,
                                               int feature_count, int target_width,
                                               shardprop_metrics* metrics) {
  return guarded(__func__, SHARDPROP_ERROR_DATA, [&] {
    shardprop::Trainer& t = trainer_of(trainer);
    require(rows >= 1, [&] {
      return "rows is " + std::to_string(rows) + "; an epoch needs at least one row";
    });
    const shardprop::Dataset data =
        dataset_of(*trainer->model, features, targets, rows, feature_count, target_width);
    write_metrics(t.train_epoch(data), trainer->model->spec().loss, metrics);
  });
}

int shardprop_mpi_available(void) { return shardprop::Communicator::mpi_available() ? 1 : 0; }

shardprop_status shardprop_trainer_create_mpi(shardprop_model* model,
                                              const shardprop_trainer_settings* settings,
                                              int64_t mpi_comm, shardprop_trainer** trainer) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    require_pointer(model, "model");
    require_pointer(settings, "settings");
    require_pointer(trainer, "trainer");
    const shardprop::Communicator comm = shardprop::Communicator::mpi(mpi_comm);
    auto handle = std::make_unique<shardprop_trainer>();
    handle->model = model->model;
    handle->trainer =
        std::make_unique<shardprop::Trainer>(*handle->model, to_settings(*settings), comm);
    *trainer = handle.release();
  });
}

shardprop_status shardprop_trainer_train_epoch_part(shardprop_trainer* trainer,
                                                    const float* features, const float* targets,
                                                    int64_t rows, int feature_count,
                                                    int target_width, int64_t first_row,
                                                    int64_t total_rows,
                                                    shardprop_metrics* metrics) {
  return guarded(__func__, SHARDPROP_ERROR_DATA, [&] {
    shardprop::Trainer& t = trainer_of(trainer);
    require(rows >= 0 && first_row >= 0 && first_row + rows <= total_rows, [&] {
      return "rows " + std::to_string(rows) + " from first_row " + std::to_string(first_row) +
             " do not fit in total_rows " + std::to_string(total_rows);
    });
    shardprop::DatasetPart part;
    part.first_row = first_row;
    part.total_rows = total_rows;
    if (rows > 0) {
      part.rows = dataset_of(*trainer->model, features, targets, rows, feature_count, target_width);
    } else {
      part.rows.feature_count = feature_count;
      part.rows.target_width = target_width;
    }
    write_metrics(t.train_epoch(part), trainer->model->spec().loss, metrics);
  });
}

shardprop_status shardprop_trainer_progress(const shardprop_trainer* trainer, int* epochs,
                                            int64_t* steps) {
  return guarded(__func__, SHARDPROP_ERROR_ARGUMENT, [&] {
    const shardprop::Trainer& t = trainer_of(trainer);
    require_pointer(epochs, "epochs");
    require_pointer(steps, "steps");
    *epochs = t.epochs_completed();
    *steps = t.steps_completed();
  });
}

shardprop_status shardprop_checkpoint_save(const shardprop_model* model,
                                           const shardprop_trainer* trainer, const char* path) {
  return guarded(__func__, SHARDPROP_ERROR_FILE, [&] {
    const shardprop::Model& m = model_of(model);
    require_pointer(path, "path");
    if (trainer == nullptr) {
      shardprop::save_safetensors(m, path);
      return;
    }
    require(trainer->model.get() == &m,
            [&] { return "the trainer trains another model than `model`"; });
    shardprop::save_checkpoint(m, *trainer->trainer, path);
  });
}

shardprop_status shardprop_trainer_load_state(shardprop_trainer* trainer, const char* path) {
  return guarded(__func__, SHARDPROP_ERROR_FILE, [&] {
    shardprop::Trainer& t = trainer_of(trainer);
    require_pointer(path, "path");
    shardprop::load_training_state(t, *trainer->model, path);
  });
}

}  // extern "C"
