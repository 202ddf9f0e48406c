// The training step: shard plan → one task per shard (forward + backward into its own
// gradient buffer) → fixed-order reduction fused with the SGD update.
#include "shardprop/trainer.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>

#include "base/blas.hpp"
#include "base/rng.hpp"
#include "nn/inference.hpp"
#include "nn/loss.hpp"
#include "nn/network.hpp"
#include "shardprop/error.hpp"
#include "train/batch_norm_combine.hpp"
#include "train/comm.hpp"
#include "train/gradient_buffer.hpp"
#include "train/parameter_update.hpp"
#include "train/shard_plan.hpp"
#include "train/stream_shuffler.hpp"
#include "train/trainer_access.hpp"

namespace shardprop {
namespace {

// Below this size a parallel update costs more than it saves.
constexpr std::size_t kParallelUpdateFloats = std::size_t{64} * 1024;
constexpr int kMinRowsPerShard = 128;
constexpr double kMinFlopsPerShard = 4.0e6;
constexpr int kMaxDefaultShards = 8;

void validate_settings(const TrainerSettings& s) {
  auto fail = [](const std::string& what) { throw Error("trainer settings: " + what); };
  if (s.threads < 0)
    fail("threads must be >= 0 (0 = the caller's arena), got " + std::to_string(s.threads));
  if (s.batch_size < 1) fail("batch size must be >= 1, got " + std::to_string(s.batch_size));
  if (s.shards < 0) fail("shards must be >= 0 (0 = automatic), got " + std::to_string(s.shards));
  if (s.shards > s.batch_size) {
    fail("shards (" + std::to_string(s.shards) + ") exceeds the batch size (" +
         std::to_string(s.batch_size) + "): every shard needs at least one row");
  }
  if (!std::isfinite(s.learning_rate) || s.learning_rate < 0.0f) {
    fail("learning rate must be finite and >= 0, got " + std::to_string(s.learning_rate));
  }
  if (!std::isfinite(s.weight_decay) || s.weight_decay < 0.0f) {
    fail("weight decay must be finite and >= 0, got " + std::to_string(s.weight_decay));
  }
  if (!(s.momentum >= 0.0f && s.momentum < 1.0f)) {
    fail("momentum must be in [0, 1), got " + std::to_string(s.momentum));
  }
  if (s.nesterov && (s.optimizer != Optimizer::sgd || s.momentum <= 0.0f)) {
    fail("nesterov needs the sgd optimizer with momentum > 0");
  }
  if (s.optimizer == Optimizer::adam && s.momentum > 0.0f) {
    fail("momentum is an sgd setting; adam uses beta1 (" + std::to_string(s.adam_beta1) + ")");
  }
  if (!(s.adam_beta1 >= 0.0f && s.adam_beta1 < 1.0f) ||
      !(s.adam_beta2 >= 0.0f && s.adam_beta2 < 1.0f)) {
    fail("adam betas must be in [0, 1)");
  }
  if (!(s.adam_epsilon > 0.0f) || !std::isfinite(s.adam_epsilon)) {
    fail("adam epsilon must be finite and > 0");
  }
  if (!std::isfinite(s.clip_grad_norm) || s.clip_grad_norm < 0.0f) {
    fail("gradient clipping norm must be finite and >= 0 (0 = off), got " +
         std::to_string(s.clip_grad_norm));
  }
  if (s.schedule == LearningRateSchedule::step &&
      (s.schedule_step_epochs < 1 || !(s.schedule_gamma > 0.0f) ||
       !std::isfinite(s.schedule_gamma))) {
    fail("the step schedule needs step epochs >= 1 and a finite gamma > 0");
  }
  if (s.schedule == LearningRateSchedule::cosine && s.cosine_epochs < 1) {
    fail("the cosine schedule needs cosine_epochs >= 1 (the run's epoch count)");
  }
}

constexpr double kPi = 3.14159265358979323846;

}  // namespace

Optimizer parse_optimizer(std::string_view name) {
  if (name == "sgd") return Optimizer::sgd;
  if (name == "adam") return Optimizer::adam;
  throw Error("unknown optimizer '" + std::string(name) + "' (expected sgd or adam)");
}

LearningRateSchedule parse_schedule(std::string_view name) {
  if (name == "constant") return LearningRateSchedule::constant;
  if (name == "step") return LearningRateSchedule::step;
  if (name == "cosine") return LearningRateSchedule::cosine;
  throw Error("unknown learning-rate schedule '" + std::string(name) +
              "' (expected constant, step or cosine)");
}

std::string_view to_string(Optimizer optimizer) {
  return optimizer == Optimizer::adam ? "adam" : "sgd";
}

std::string_view to_string(LearningRateSchedule schedule) {
  switch (schedule) {
    case LearningRateSchedule::step:
      return "step";
    case LearningRateSchedule::cosine:
      return "cosine";
    case LearningRateSchedule::constant:
      break;
  }
  return "constant";
}

int default_shard_count(const ModelSpec& spec, int batch_size) {
  const double step_flops = 3.0 * detail::forward_flops_per_row(spec) * batch_size;
  const int by_rows = batch_size / kMinRowsPerShard;
  const int by_work = static_cast<int>(std::min(1.0e9, step_flops / kMinFlopsPerShard));
  return std::clamp(std::min(by_rows, by_work), 1, kMaxDefaultShards);
}

struct Trainer::State {
  Model& model;
  const detail::Network& net;
  TrainerSettings settings;
  int shards;
  int target_width;
  bool parallel;
  mutable std::optional<tbb::task_arena> arena;  // execute() is not const; the arena is a resource
  std::vector<detail::ShardWorkspace> workspaces;
  detail::GradientBuffers gradients;
  detail::ParameterUpdate update;
  detail::LocalCommunicator comm;
  detail::BatchNormCombine batch_norm_combine;
  // Epoch state: the row order and the gathered minibatch for shuffled epochs.
  std::vector<std::int64_t> order;
  detail::AlignedFloats batch_features, batch_targets;
  detail::StreamShuffler stream_shuffler;
  int epochs = 0;
  std::int64_t steps = 0;
  double gradient_norm = 0.0;
  // Accuracy and error sums of each shard's training outputs in the current step, and their
  // running total over the epoch (added in step order, shards in shard order).
  std::vector<detail::MetricSums> shard_metrics;
  detail::MetricSums epoch_metrics;
  // Batch-norm running statistics and counters as they were before the step: the forward pass
  // updates them before the loss is known, and a step with a non-finite loss must not.
  detail::AlignedFloats running_backup;
  std::vector<std::int64_t> counter_backup;

  State(Model& m, const TrainerSettings& s)
      : model(m),
        net(detail::network_of(m)),
        settings(s),
        shards(s.shards > 0 ? s.shards : default_shard_count(m.spec(), s.batch_size)),
        target_width(detail::target_width(m.spec().loss, m.outputs())),
        parallel(false),
        gradients(shards, net.parameter_count),
        update(net.tensors, net.parameter_count, s),
        batch_norm_combine(net, shards, comm),
        stream_shuffler(net.spec.inputs, target_width) {
    if (s.threads > 0) arena.emplace(s.threads);
    const int threads = s.threads > 0 ? s.threads : tbb::this_task_arena::max_concurrency();
    parallel = threads > 1;
    const detail::ShardPlan plan(s.batch_size, shards);
    for (int shard = 0; shard < shards; ++shard) {
      workspaces.push_back(net.make_workspace(std::max(1, plan.size(shard))));
    }
    shard_metrics.assign(static_cast<std::size_t>(shards), {});
    for (const TensorInfo& t : net.tensors) {
      if (t.role == TensorRole::running_stat) running_backup.resize(running_backup.size() + t.size);
    }
    counter_backup.assign(net.counter_count, 0);
    batch_features.assign(static_cast<std::size_t>(s.batch_size) * net.spec.inputs, 0.0f);
    batch_targets.assign(static_cast<std::size_t>(s.batch_size) * target_width, 0.0f);
  }

  template <class F>
  void run(F&& f) const {
    if (arena) {
      arena->execute(f);
    } else {
      f();
    }
  }

  // The columns, values and targets of a dataset (or a stream's chunk) the trainer is given.
  // Rows are numbered from 0 in messages.
  void check_data(const Dataset& data, const char* what) const {
    detail::check_data(net, data, 0, detail::TargetWording::trainer, what);
  }

  // The schedule at the current epoch; a pure function of the epoch, so resumes agree.
  double learning_rate() const {
    const double base = settings.learning_rate;
    switch (settings.schedule) {
      case LearningRateSchedule::step:
        return base * std::pow(static_cast<double>(settings.schedule_gamma),
                               epochs / settings.schedule_step_epochs);
      case LearningRateSchedule::cosine: {
        const int e = std::min(epochs, settings.cosine_epochs);
        return base * 0.5 * (1.0 + std::cos(kPi * e / settings.cosine_epochs));
      }
      case LearningRateSchedule::constant:
        break;
    }
    return base;
  }

  // Runs f(i) for every parameter segment, in parallel when the parameters are many.
  template <class F>
  void for_each_segment(F&& f) {
    const std::size_t count = update.segment_count();
    if (parallel && net.parameter_count >= kParallelUpdateFloats) {
      run([&] {
        tbb::parallel_for(tbb::blocked_range<std::size_t>(0, count, 1),
                          [&](const tbb::blocked_range<std::size_t>& r) {
                            for (std::size_t i = r.begin(); i < r.end(); ++i) f(i);
                          });
      });
    } else {
      for (std::size_t i = 0; i < count; ++i) f(i);
    }
  }

  [[noreturn]] void fail_not_finite(const char* what) const {
    throw Error("epoch " + std::to_string(epochs + 1) + ", step " + std::to_string(steps + 1) +
                ": the " + what +
                " is not finite (NaN or Inf); the learning rate is probably too large (it is " +
                std::to_string(learning_rate()) + "), or the inputs are not standardized");
  }

  // Saves the running statistics and counters into the backup, or restores them from it.
  void copy_running_statistics(bool restore) {
    if (net.batch_norms.empty()) return;
    float* params = model.parameters().data();
    std::size_t at = 0;
    for (const TensorInfo& t : net.tensors) {
      if (t.role != TensorRole::running_stat) continue;
      float* backup = running_backup.data() + at;
      if (restore) {
        std::copy_n(backup, t.size, params + t.offset);
      } else {
        std::copy_n(params + t.offset, t.size, backup);
      }
      at += t.size;
    }
    std::int64_t* counters = model.counters().data();
    if (restore) {
      std::copy(counter_backup.begin(), counter_backup.end(), counters);
    } else {
      std::copy_n(counters, counter_backup.size(), counter_backup.begin());
    }
  }

  // Accuracy and error sums of a shard's training-mode outputs, which the loss phase leaves in
  // the last layer's buffer (backward writes only deltas and gradients).
  detail::MetricSums output_metrics(const detail::ShardWorkspace& ws) const {
    const int outputs = net.outputs();
    const detail::ConstMatrix y{ws.outputs.back().data(), ws.x.rows, outputs, outputs};
    return detail::metric_sums(net.spec.loss, y, ws.targets);
  }

  // The step proper, on validated input.
  double step(const float* features, const float* targets, int rows) {
    const detail::ShardPlan plan(rows, shards);
    const int inputs = net.spec.inputs;
    const float* params = net.parameters.data();
    const float scale = 1.0f / static_cast<float>(rows);
    detail::SingleThreadedBlas one_blas_thread;
    copy_running_statistics(/*restore=*/false);

    for (int s = 0; s < plan.shards; ++s) {
      const int begin = plan.begin(s);
      const detail::ConstMatrix x{features + static_cast<std::ptrdiff_t>(begin) * inputs,
                                  plan.size(s), inputs, inputs};
      net.begin_pass(workspaces[s], x, targets + static_cast<std::ptrdiff_t>(begin) * target_width,
                     scale, {settings.seed, static_cast<std::uint64_t>(steps), begin});
    }
    // One parallel region per phase; without batch norm that is the whole pass.
    const int phases = net.phase_count();
    const int loss_phase = static_cast<int>(net.batch_norms.size());
    for (int phase = 0; phase < phases; ++phase) {
      auto run_shard = [&](int s) {
        net.run_phase(phase, params, batch_norm_combine.syncs(), workspaces[s], gradients.shard(s));
        if (phase == loss_phase) shard_metrics[s] = output_metrics(workspaces[s]);
      };
      if (parallel && plan.shards > 1) {
        run([&] {
          tbb::parallel_for(
              tbb::blocked_range<int>(0, plan.shards, 1),
              [&](const tbb::blocked_range<int>& r) {
                for (int s = r.begin(); s < r.end(); ++s) run_shard(s);
              },
              tbb::simple_partitioner());
        });
      } else {
        for (int s = 0; s < plan.shards; ++s) run_shard(s);
      }
      if (phase + 1 < phases) {
        batch_norm_combine.after_phase(
            phase, std::span<const detail::ShardWorkspace>(workspaces.data(), plan.shards),
            model.parameters().data(), model.counters().data());
      }
    }
    double loss = 0.0;
    for (int s = 0; s < plan.shards; ++s) loss += workspaces[s].loss;
    if (!std::isfinite(loss)) {
      copy_running_statistics(/*restore=*/true);
      fail_not_finite("loss");
    }

    gradient_norm = update.apply(model.parameters().data(), gradients, plan.shards, learning_rate(),
                                 steps, [&](auto&& f) { for_each_segment(f); });
    if (!std::isfinite(gradient_norm)) fail_not_finite("gradient");
    ++steps;
    for (int s = 0; s < plan.shards; ++s) epoch_metrics.add(shard_metrics[s]);  // shard order
    return loss / rows;
  }
};

Trainer::Trainer(Model& model, const TrainerSettings& settings) {
  validate_settings(settings);
  state_ = std::make_unique<State>(model, settings);
}

Trainer::~Trainer() = default;

double Trainer::step(std::span<const float> features, std::span<const float> targets) {
  State& st = *state_;
  const int inputs = st.net.spec.inputs;
  if (features.empty() || features.size() % static_cast<std::size_t>(inputs) != 0) {
    throw Error("step: " + std::to_string(features.size()) +
                " feature values do not form rows of the model's " + std::to_string(inputs) +
                " inputs");
  }
  const std::size_t rows = features.size() / inputs;
  if (rows > static_cast<std::size_t>(st.settings.batch_size)) {
    throw Error("step: " + std::to_string(rows) + " rows exceed the batch size " +
                std::to_string(st.settings.batch_size) + " the trainer was sized for");
  }
  if (targets.size() != rows * st.target_width) {
    throw Error("step: " + std::to_string(rows) + " rows need " +
                std::to_string(rows * st.target_width) + " target values (" +
                std::to_string(st.target_width) + " per row), got " +
                std::to_string(targets.size()));
  }
  detail::check_targets(st.net.spec.loss, st.net.outputs(), targets.data(),
                        static_cast<std::int64_t>(rows), 0, detail::TargetWording::trainer, "step");
  if (rows == 1 && !st.net.batch_norms.empty()) {
    throw Error(
        "step: a minibatch of 1 row cannot train batch normalization (its batch "
        "variance is undefined); use at least 2 rows");
  }
  return st.step(features.data(), targets.data(), static_cast<int>(rows));
}

namespace {

Metrics metrics_from(const detail::MetricSums& total, std::int64_t rows) {
  Metrics m;
  m.rows = rows;
  m.loss = rows > 0 ? total.loss / static_cast<double>(rows) : 0.0;
  m.accuracy = total.predictions > 0 ? total.correct / total.predictions : 0.0;
  m.rmse = total.outputs > 0 ? std::sqrt(total.squared_error / total.outputs) : 0.0;
  return m;
}

}  // namespace

Metrics Trainer::train_epoch(const Dataset& data, const ProgressCallback& progress) {
  State& st = *state_;
  const int inputs = st.net.spec.inputs;
  st.check_data(data, "train");
  if (data.rows == 0) throw Error("train: the dataset has no rows");

  st.order.resize(static_cast<std::size_t>(data.rows));
  std::iota(st.order.begin(), st.order.end(), std::int64_t{0});
  if (st.settings.shuffle) {
    // Fisher–Yates driven by (seed, epoch, i): the same permutation on every machine.
    for (std::int64_t i = data.rows - 1; i > 0; --i) {
      const std::uint64_t bits = detail::random_bits(st.settings.seed, detail::RngPurpose::shuffle,
                                                     static_cast<std::uint64_t>(st.epochs), i);
      std::swap(st.order[i], st.order[bits % static_cast<std::uint64_t>(i + 1)]);
    }
  }

  st.epoch_metrics = {};
  double loss_sum = 0.0;
  const std::int64_t batch = st.settings.batch_size;
  // Batch norm cannot train on one row: a last minibatch of one row is skipped this epoch
  // (with shuffling, a different row each epoch).
  const std::int64_t usable = !st.net.batch_norms.empty() && data.rows % batch == 1 && data.rows > 1
                                  ? data.rows - 1
                                  : data.rows;
  for (std::int64_t begin = 0; begin < usable; begin += batch) {
    const int rows = static_cast<int>(std::min(batch, usable - begin));
    const float* x = data.features.data() + begin * inputs;
    const float* t = data.targets.data() + begin * st.target_width;
    if (st.settings.shuffle) {
      for (int r = 0; r < rows; ++r) {
        const std::int64_t src = st.order[begin + r];
        std::copy_n(data.features.data() + src * inputs, inputs,
                    st.batch_features.data() + static_cast<std::ptrdiff_t>(r) * inputs);
        std::copy_n(data.targets.data() + src * st.target_width, st.target_width,
                    st.batch_targets.data() + static_cast<std::ptrdiff_t>(r) * st.target_width);
      }
      x = st.batch_features.data();
      t = st.batch_targets.data();
    }
    loss_sum += st.step(x, t, rows) * rows;
    if (progress) progress(begin + rows, usable);
  }
  ++st.epochs;
  Metrics m = metrics_from(st.epoch_metrics, usable);
  m.loss = loss_sum / static_cast<double>(usable);  // the steps' own losses, bitwise as before
  return m;
}

namespace {

// Inference-mode sums of a dataset or a stream, through the one evaluation pass evaluate_model
// uses too (nn/inference.hpp). Rows are numbered from 0 in messages.
template <class Feed>
Metrics evaluate_rows(const detail::Network& net, Feed&& feed) {
  detail::MetricSums total;
  detail::RowEvaluator rows(net, 0, detail::TargetWording::trainer, "evaluate",
                            [&](const float*, const float*, const detail::MetricSums& row) {
                              total.add(row);  // data order: deterministic
                            });
  feed(rows);
  rows.finish();
  return metrics_from(total, rows.rows());
}

}  // namespace

Metrics Trainer::evaluate(const Dataset& data) const {
  Metrics m;
  state_->run(
      [&] { m = evaluate_rows(state_->net, [&](detail::RowEvaluator& rows) { rows.add(data); }); });
  return m;
}

Metrics Trainer::evaluate(DataStream& stream) const {
  Metrics m;
  state_->run([&] {
    m = evaluate_rows(state_->net, [&](detail::RowEvaluator& rows) {
      Dataset chunk;
      stream.rewind();
      while (stream.next(chunk)) rows.add(chunk);
    });
  });
  return m;
}

Metrics Trainer::train_epoch(DataStream& stream, const ProgressCallback& progress) {
  State& st = *state_;
  const int inputs = st.net.spec.inputs;
  const int target_width = st.target_width;
  const std::size_t row_floats = static_cast<std::size_t>(inputs + target_width);
  const std::int64_t batch = st.settings.batch_size;
  const std::int64_t capacity =
      st.settings.shuffle ? std::max<std::int64_t>(
                                batch, static_cast<std::int64_t>(st.settings.shuffle_buffer_bytes /
                                                                 (row_floats * sizeof(float))))
                          : 0;
  st.stream_shuffler.begin(capacity, st.settings.seed, static_cast<std::uint64_t>(st.epochs));

  st.epoch_metrics = {};
  double loss_sum = 0.0;
  std::int64_t used = 0;
  int in_batch = 0;
  auto flush = [&] {
    loss_sum += st.step(st.batch_features.data(), st.batch_targets.data(), in_batch) * in_batch;
    used += in_batch;
    in_batch = 0;
    if (progress) progress(used, -1);
  };
  // A row joins the minibatch being assembled; a full minibatch is a step.
  auto emit = [&](const float* x, const float* t) {
    std::copy_n(x, inputs,
                st.batch_features.data() + static_cast<std::ptrdiff_t>(in_batch) * inputs);
    std::copy_n(t, target_width,
                st.batch_targets.data() + static_cast<std::ptrdiff_t>(in_batch) * target_width);
    if (++in_batch == batch) flush();
  };
  Dataset chunk;
  stream.rewind();
  while (stream.next(chunk)) {
    st.check_data(chunk, "train");
    for (std::int64_t r = 0; r < chunk.rows; ++r) {
      st.stream_shuffler.push(chunk.features.data() + r * inputs,
                              chunk.targets.data() + r * target_width, emit);
    }
  }
  if (st.stream_shuffler.rows_seen() == 0) throw Error("train: the stream has no rows");
  st.stream_shuffler.drain(emit);
  // As in the in-memory epoch, batch norm skips a last minibatch of one row.
  if (in_batch > 1 || (in_batch == 1 && st.net.batch_norms.empty())) flush();
  ++st.epochs;
  Metrics m = metrics_from(st.epoch_metrics, used);
  m.loss = used > 0 ? loss_sum / static_cast<double>(used) : 0.0;
  return m;
}

int Trainer::shard_count() const { return state_->shards; }
int Trainer::epochs_completed() const { return state_->epochs; }
std::int64_t Trainer::steps_completed() const { return state_->steps; }
double Trainer::learning_rate() const { return state_->learning_rate(); }
double Trainer::last_gradient_norm() const { return state_->gradient_norm; }

std::vector<std::string> detail::TrainerAccess::optimizer_state_names(const Trainer& trainer) {
  const Trainer::State& state = *trainer.state_;
  if (state.settings.optimizer == Optimizer::adam) return {"exp_avg", "exp_avg_sq"};
  if (state.update.state().size() == 1) return {"momentum_buffer"};
  return {};
}

std::span<float> detail::TrainerAccess::optimizer_state(Trainer& trainer, int slot) {
  Trainer::State& state = *trainer.state_;
  std::vector<detail::AlignedFloats>& slots = state.update.state();
  if (slot < 0 || slot >= static_cast<int>(slots.size())) {
    throw Error("optimizer state slot " + std::to_string(slot) + " does not exist");
  }
  return {slots[slot].data(), slots[slot].size()};
}

std::span<const float> detail::TrainerAccess::optimizer_state(const Trainer& trainer, int slot) {
  return optimizer_state(const_cast<Trainer&>(trainer), slot);
}

void detail::TrainerAccess::set_progress(Trainer& trainer, int epochs, std::int64_t steps) {
  if (epochs < 0 || steps < 0) {
    throw Error("trainer progress must be >= 0, got epoch " + std::to_string(epochs) + ", step " +
                std::to_string(steps));
  }
  trainer.state_->epochs = epochs;
  trainer.state_->steps = steps;
}
const TrainerSettings& Trainer::settings() const { return state_->settings; }

}  // namespace shardprop
