// The training step: shard plan → one task per shard (forward + backward into its own
// gradient buffer) → fixed-order reduction fused with the SGD update.
#include "shardprop/trainer.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>

#include "base/agreement.hpp"
#include "base/blas.hpp"
#include "base/communicator.hpp"
#include "base/rng.hpp"
#include "nn/exact_metric_sums.hpp"
#include "nn/inference.hpp"
#include "nn/loss.hpp"
#include "nn/network.hpp"
#include "shardprop/error.hpp"
#include "train/batch_norm_combine.hpp"
#include "train/gradient_buffer.hpp"
#include "train/gradient_exchange.hpp"
#include "train/parameter_update.hpp"
#include "train/row_exchange.hpp"
#include "train/shard_plan.hpp"
#include "train/shard_values.hpp"
#include "train/shared_stream_shuffle.hpp"
#include "train/step_profiler.hpp"
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

namespace {

// The shard count: the setting, or the automatic one raised to the rank count (the one case
// where the rank count changes results: see docs/distributed.md).
int shard_count_for(const Model& model, const TrainerSettings& s, int ranks) {
  if (s.batch_size < ranks) {
    throw Error("trainer settings: a batch of " + std::to_string(s.batch_size) +
                " rows cannot be split over " + std::to_string(ranks) +
                " ranks: every rank needs at least one row");
  }
  if (s.shards > 0) {
    if (s.shards < ranks) {
      throw Error("trainer settings: " + std::to_string(s.shards) + " shards cannot keep " +
                  std::to_string(ranks) + " ranks busy: every rank needs at least one shard");
    }
    return s.shards;
  }
  return std::max(default_shard_count(model.spec(), s.batch_size), ranks);
}

// Per layer, the update segments of its trained tensors (none for layers without any).
std::vector<std::pair<std::size_t, std::size_t>> segments_by_layer(
    const detail::Network& net, const detail::ParameterUpdate& update) {
  std::vector<std::pair<std::size_t, std::size_t>> segments(net.layers.size(), {0, 0});
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    if (const auto* d = std::get_if<detail::Dense>(&net.layers[l])) {
      segments[l] = update.segments_within(d->weight, d->bias + static_cast<std::size_t>(d->out));
    }
  }
  return segments;
}

// Values a step gathers per shard: its loss and its five metric sums.
constexpr std::size_t kShardValues = 6;

// A stream whose rewind() and next() run through `guard` (which may translate their errors).
template <class Guard>
class CheckedReads final : public DataStream {
 public:
  CheckedReads(DataStream& source, Guard& guard) : source_(source), guard_(guard) {}
  void rewind() override {
    guard_([&] { source_.rewind(); });
  }
  bool next(Dataset& chunk) override {
    return guard_([&] { return source_.next(chunk); });
  }

 private:
  DataStream& source_;
  Guard& guard_;
};

// Thrown inside a streamed epoch to leave it at a step boundary when asked to stop.
struct EpochStopped {};

Metrics metrics_from(const detail::MetricSums& total, std::int64_t rows) {
  Metrics m;
  m.rows = rows;
  m.loss = rows > 0 ? total.loss / static_cast<double>(rows) : 0.0;
  m.accuracy = total.predictions > 0 ? total.correct / total.predictions : 0.0;
  m.rmse = total.outputs > 0 ? std::sqrt(total.squared_error / total.outputs) : 0.0;
  return m;
}

}  // namespace

struct Trainer::State {
  Model& model;
  const detail::Network& net;
  TrainerSettings settings;
  Communicator communicator;
  detail::Communicator& comm;
  int ranks, rank;
  int shards;
  int max_local_shards;  // the largest group a rank runs in a full minibatch
  int target_width;
  bool parallel;
  mutable std::optional<tbb::task_arena> arena;  // execute() is not const; the arena is a resource
  std::vector<detail::ShardWorkspace> workspaces;  // this rank's shards, in order
  detail::GradientBuffers gradients;
  detail::ParameterUpdate update;
  // Per layer: its update segments, and how many shards have yet to finish its gradient in the
  // step under way (see step: the update of a layer starts as soon as the count reaches 0).
  std::vector<std::pair<std::size_t, std::size_t>> layer_segments = segments_by_layer(net, update);
  std::unique_ptr<std::atomic<int>[]> shards_left =
      std::make_unique<std::atomic<int>[]>(net.layers.size());
  std::atomic<double> update_seconds{0.0};  // thread-seconds of the in-pass update (profiling)
  detail::BatchNormCombine batch_norm_combine;
  detail::ShardValues shard_values;
  std::optional<detail::GradientExchange> gradient_exchange;  // several ranks only
  detail::RowExchange row_exchange;
  // Epoch state: the row order and the gathered minibatch for shuffled epochs.
  std::vector<std::int64_t> order;
  detail::AlignedFloats batch_features, batch_targets;
  detail::StreamShuffler stream_shuffler;
  // Streams spread over ranks: the shared shuffle, the rows of the minibatch being assembled
  // (the whole's indices) and, for those this rank holds, their data by position.
  detail::SharedStreamShuffle shared_shuffle;
  std::vector<std::int64_t> batch_rows;
  std::vector<float> staged;
  // Rows counted always; with profile_phases, where the steps' time went. Mutable: evaluate()
  // is const but counts its rows.
  mutable detail::StepProfiler profiler;
  int epochs = 0;
  std::int64_t steps = 0;
  double gradient_norm = 0.0;
  // The running total over the epoch of the shards' accuracy and error sums (added in step
  // order, shards in global shard order), and the rest of where the epoch stands: its steps
  // done, their rows and Σ step loss × rows. epoch_step > 0 at the start of train_epoch: an
  // epoch stopped there (or restored from a checkpoint) continues.
  detail::MetricSums epoch_metrics;
  std::int64_t epoch_step = 0;
  std::int64_t epoch_rows = 0;
  double epoch_loss_sum = 0.0;
  // Stopping at a step boundary (see Trainer::set_stop_flag).
  const StopFlag* stop_flag = nullptr;
  int stop_request = 0;
  std::function<void()> after_step;
  // Batch-norm running statistics and counters as they were before the step: the forward pass
  // updates them before the loss is known, and a step with a non-finite loss must not.
  detail::AlignedFloats running_backup;
  std::vector<std::int64_t> counter_backup;

  State(Model& m, const TrainerSettings& s, const Communicator& c)
      : model(m),
        net(detail::network_of(m)),
        settings(s),
        communicator(c),
        comm(detail::CommunicatorAccess::of(c)),
        ranks(comm.size()),
        rank(comm.rank()),
        shards(shard_count_for(m, s, ranks)),
        max_local_shards(
            detail::RankShards(detail::ShardPlan(s.batch_size, shards), ranks, 0).shard_count),
        target_width(detail::target_width(m.spec().loss, m.outputs())),
        parallel(false),
        gradients(max_local_shards, net.parameter_count),
        update(net.tensors, net.parameter_count, s),
        batch_norm_combine(net, max_local_shards, comm),
        shard_values(comm, max_local_shards, kShardValues),
        row_exchange(comm, net.spec.inputs, target_width),
        stream_shuffler(net.spec.inputs, target_width),
        shared_shuffle(net.spec.inputs + target_width),
        profiler(s.profile_phases) {
    if (ranks > 1)
      gradient_exchange.emplace(comm, net.tensors, net.parameter_count, s.overlap_exchange);
    if (s.threads > 0) arena.emplace(s.threads);
    const int threads = s.threads > 0 ? s.threads : tbb::this_task_arena::max_concurrency();
    parallel = threads > 1;
    const detail::ShardPlan plan(s.batch_size, shards);
    const detail::RankShards mine(plan, ranks, rank);
    for (int i = 0; i < mine.shard_count; ++i) {
      workspaces.push_back(net.make_workspace(plan.size(mine.first_shard + i)));
      workspaces.back().profile = s.profile_phases;
    }
    for (const TensorInfo& t : net.tensors) {
      if (t.role == TensorRole::running_stat) running_backup.resize(running_backup.size() + t.size);
    }
    counter_backup.assign(net.counter_count, 0);
    batch_features.assign(static_cast<std::size_t>(s.batch_size) * net.spec.inputs, 0.0f);
    batch_targets.assign(static_cast<std::size_t>(s.batch_size) * target_width, 0.0f);
  }

  template <class Gather>
  Metrics epoch(std::int64_t total, Gather&& gather, const ProgressCallback& progress);

  // A streamed epoch in one process; see stream_epoch below.
  struct StreamRows {
    std::int64_t first_row = 0;  // the stream's first row in the whole, for messages
    std::int64_t rows = -1;      // the rows the stream must hand out (-1: as many as it has)
    bool collective = false;     // bad data throws CollectiveError (a StreamPart's reads)
    // The stream hands out the same rows every epoch (a StreamPart's file): when they all fit
    // in the shuffle buffer, later epochs take them from there instead of reading them again.
    bool same_every_epoch = false;
  };
  // The stream whose rows the shuffle buffer holds, all of them (see stream_epoch).
  const DataStream* kept_stream = nullptr;
  std::int64_t kept_first_row = 0;
  Metrics stream_epoch(DataStream& stream, const StreamRows& rows,
                       const ProgressCallback& progress);
  template <class Emit, class Reading>
  void read_into_buffer(DataStream& stream, const StreamRows& rows, Emit& emit, Reading& reading);

  // Starts an epoch, or continues one that stopped inside: returns the steps already done.
  std::int64_t begin_epoch() {
    if (epoch_step == 0) {
      epoch_metrics = {};
      epoch_rows = 0;
      epoch_loss_sum = 0.0;
    }
    return epoch_step;
  }

  // A step of the epoch is done: its loss (the step's mean) over `rows` rows joins the sums.
  void count_step(double loss, int rows) {
    epoch_loss_sum += loss * rows;
    epoch_rows += rows;
    ++epoch_step;
  }

  // After a step that does not end the epoch: the caller's callback, then whether to stop here.
  bool stop_after_step() const {
    if (after_step) after_step();
    return stop_request != 0;
  }

  // The running metrics of the epoch so far; `finished` closes the epoch.
  Metrics epoch_metrics_so_far(bool finished) {
    Metrics m = metrics_from(epoch_metrics, epoch_rows);
    m.loss = epoch_rows > 0 ? epoch_loss_sum / static_cast<double>(epoch_rows) : 0.0;
    if (finished) {
      ++epochs;
      epoch_step = 0;
    }
    return m;
  }

  // An epoch that fails leaves no position behind: called again, it starts over, as it did
  // before stopping inside epochs existed.
  template <class F>
  Metrics run_epoch(F&& f) {
    try {
      return f();
    } catch (const EpochStopped&) {
      return epoch_metrics_so_far(/*finished=*/false);
    } catch (...) {
      epoch_step = 0;
      throw;
    }
  }

  // A streamed epoch continued after step `skip` must have had that many steps to skip.
  void check_skipped(std::int64_t skip, std::int64_t left_to_skip) const {
    if (left_to_skip > 0) {
      throw Error("train: the epoch was stopped after step " + std::to_string(skip) +
                  ", but the data has only " + std::to_string(skip - left_to_skip) +
                  " steps (did the data change?)");
    }
  }

  // The rows a streamed epoch's shuffle buffer holds: shuffle_buffer_bytes of rows, at least a
  // minibatch; 0 (rows pass in order) without shuffling.
  std::int64_t shuffle_buffer_rows() const {
    if (!settings.shuffle) return 0;
    const std::size_t row_bytes =
        static_cast<std::size_t>(net.spec.inputs + target_width) * sizeof(float);
    return std::max<std::int64_t>(
        settings.batch_size, static_cast<std::int64_t>(settings.shuffle_buffer_bytes / row_bytes));
  }

  // This rank's shards and rows of a minibatch of `rows` rows.
  detail::RankShards rank_shards(int rows) const {
    return detail::RankShards(detail::ShardPlan(rows, shards), ranks, rank);
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

  // Runs f(from, to) over blocks of [0, n), in parallel when n is large.
  void for_each_block(std::size_t n, const std::function<void(std::size_t, std::size_t)>& f) {
    constexpr std::size_t kBlock = std::size_t{16} * 1024;
    if (!parallel || n < 2 * kBlock) {
      f(0, n);
      return;
    }
    run([&] {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n, kBlock),
                        [&](const tbb::blocked_range<std::size_t>& r) { f(r.begin(), r.end()); });
    });
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

  // The step proper, on validated input: a minibatch of `rows` rows of which features and
  // targets hold this rank's (rank_shards(rows)), in order.
  double step(const float* features, const float* targets, int rows) {
    const detail::ShardPlan plan(rows, shards);
    const detail::RankShards mine(plan, ranks, rank);
    const int local = mine.shard_count;
    const bool parallel_shards = parallel && local > 1;
    if (profiler.on()) {
      const int threads =
          settings.threads > 0 ? settings.threads : tbb::this_task_arena::max_concurrency();
      profiler.begin_step(std::span<detail::ShardWorkspace>(workspaces.data(), local),
                          parallel_shards ? std::min(threads, local) : 1);
    }
    const int inputs = net.spec.inputs;
    const float* params = net.parameters.data();
    const float scale = 1.0f / static_cast<float>(rows);
    detail::SingleThreadedBlas one_blas_thread;
    copy_running_statistics(/*restore=*/false);

    for (int i = 0; i < local; ++i) {
      const int begin = plan.begin(mine.first_shard + i);
      const std::ptrdiff_t at = begin - mine.first_row;
      const detail::ConstMatrix x{features + at * inputs, plan.size(mine.first_shard + i), inputs,
                                  inputs};
      net.begin_pass(workspaces[i], x, targets + at * target_width, scale,
                     {settings.seed, static_cast<std::uint64_t>(steps), begin});
    }
    // Several ranks: the gradient exchange may start on layers the backward pass has finished.
    const std::function<void(int)> layer_done = [this](int layer) {
      gradient_exchange->layer_done(layer);
    };
    if (gradient_exchange) gradient_exchange->begin(gradients, local);
    // One parallel region per phase; without batch norm that is the whole pass.
    const int phases = net.phase_count();
    const int loss_phase = static_cast<int>(net.batch_norms.size());
    // With the shards in parallel in one region, a layer's reduction and update run as tasks of
    // that region as soon as every shard has finished the layer's gradient (the last shard to
    // finish it starts them): no barrier and no second region, and the update of the top
    // layers overlaps the backward pass of the lower ones. No shard reads a layer's weights
    // after its gradient is done. Each segment's update is the same call as in the separate
    // pass, so the bits are the same. Not with batch norm (several regions), several ranks (the
    // exchange comes first) or clipping (the norm must be known before any update).
    const bool update_in_pass =
        parallel_shards && phases == 1 && !gradient_exchange && settings.clip_grad_norm == 0.0f;
    tbb::task_group* update_tasks = nullptr;  // the region's task group, while it runs
    const std::function<void(int)> layer_done_update = [&](int layer) {
      if (shards_left[layer].fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      // Every shard is past its loss: a non-finite loss moves no parameter (the step throws
      // below). The sum in shard order, as the step's loss.
      double loss = 0.0;
      for (int i = 0; i < local; ++i) loss += workspaces[i].loss;
      if (!std::isfinite(loss)) return;
      const auto [first, last] = layer_segments[static_cast<std::size_t>(layer)];
      for (std::size_t segment = first; segment < last; ++segment) {
        update_tasks->run([this, segment, local] {
          using Clock = std::chrono::steady_clock;
          const Clock::time_point start = profiler.on() ? Clock::now() : Clock::time_point{};
          update.update_segment(model.parameters().data(), gradients, local, segment);
          if (profiler.on()) {
            update_seconds.fetch_add(std::chrono::duration<double>(Clock::now() - start).count(),
                                     std::memory_order_relaxed);
          }
        });
      }
    };
    if (update_in_pass) {
      update.begin_step(learning_rate(), steps);
      for (std::size_t l = 0; l < net.layers.size(); ++l) {
        shards_left[l].store(local, std::memory_order_relaxed);
      }
      update_seconds.store(0.0, std::memory_order_relaxed);
    }
    const std::function<void(int)>* on_layer_done =
        gradient_exchange ? &layer_done : (update_in_pass ? &layer_done_update : nullptr);
    for (int phase = 0; phase < phases; ++phase) {
      auto run_shard = [&](int i) {
        net.run_phase(phase, params, batch_norm_combine.syncs(), workspaces[i], gradients.shard(i),
                      on_layer_done);
        if (phase == loss_phase) {
          detail::ShardWorkspace& ws = workspaces[i];
          detail::PhaseClock clock(ws.profile ? &ws.seconds : nullptr);
          record_shard_values(i);
          clock.lap(&detail::PhaseSeconds::forward_elementwise);
        }
      };
      profiler.begin_region();
      if (update_in_pass) {
        run([&] {
          tbb::task_group tasks;
          update_tasks = &tasks;
          for (int i = 0; i < local; ++i) tasks.run([&run_shard, i] { run_shard(i); });
          tasks.wait();
          update_tasks = nullptr;
        });
        profiler.add_update_in_region(update_seconds.load(std::memory_order_relaxed));
      } else if (parallel_shards) {
        run([&] {
          tbb::parallel_for(
              tbb::blocked_range<int>(0, local, 1),
              [&](const tbb::blocked_range<int>& r) {
                for (int i = r.begin(); i < r.end(); ++i) run_shard(i);
              },
              tbb::simple_partitioner());
        });
      } else {
        for (int i = 0; i < local; ++i) run_shard(i);
      }
      profiler.end_region();
      if (phase + 1 < phases) {
        profiler.time(&StepProfile::batch_norm_sync, [&] {
          batch_norm_combine.after_phase(
              phase, std::span<const detail::ShardWorkspace>(workspaces.data(), local),
              model.parameters().data(), model.counters().data());
        });
      }
    }
    // Every shard's loss and metrics, added in global shard order on every rank.
    shard_values.gather(local, stop_flag != nullptr ? stop_flag->load() : 0);
    stop_request = shard_values.stop_request();
    double loss = 0.0;
    shard_values.for_each([&](const double* v) { loss += v[0]; });
    // The exchange completes on every rank before anything can fail, so no rank is left in it.
    const detail::GradientBuffers* total = nullptr;
    if (gradient_exchange) {
      profiler.time(&StepProfile::exchange, [&] {
        total =
            &gradient_exchange->finish([&](std::size_t n, const auto& f) { for_each_block(n, f); });
      });
    }
    if (!std::isfinite(loss)) {
      copy_running_statistics(/*restore=*/true);
      fail_not_finite("loss");
    }

    auto segments = [&](auto&& f) { for_each_segment(f); };
    profiler.time(&StepProfile::reduction_update, [&] {
      if (update_in_pass) {
        gradient_norm = update.finish_step();  // the pass updated every segment
      } else if (total != nullptr) {
        gradient_norm =
            update.apply(model.parameters().data(), *total, 1, learning_rate(), steps, segments);
      } else {
        gradient_norm = update.apply(model.parameters().data(), gradients, plan.shards,
                                     learning_rate(), steps, segments);
      }
    });
    if (!std::isfinite(gradient_norm)) fail_not_finite("gradient");
    ++steps;
    shard_values.for_each([&](const double* v) {
      epoch_metrics.add({v[1], v[2], v[3], v[4], v[5]});
    });
    profiler.end_step(mine.row_count);
    return loss / rows;
  }

  // A shard's loss and the accuracy and error sums of its training-mode outputs, which the loss
  // phase computes with the loss.
  void record_shard_values(int i) {
    const detail::ShardWorkspace& ws = workspaces[i];
    const detail::MetricSums& m = ws.metrics;
    double* v = shard_values.local(i);
    v[0] = ws.loss;
    v[1] = m.loss;
    v[2] = m.correct;
    v[3] = m.predictions;
    v[4] = m.squared_error;
    v[5] = m.outputs;
  }
};

Trainer::Trainer(Model& model, const TrainerSettings& settings, const Communicator& comm) {
  validate_settings(settings);
  state_ = std::make_unique<State>(model, settings, comm);
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
  const detail::RankShards mine = st.rank_shards(static_cast<int>(rows));
  return st.step(features.data() + static_cast<std::ptrdiff_t>(mine.first_row) * inputs,
                 targets.data() + static_cast<std::ptrdiff_t>(mine.first_row) * st.target_width,
                 static_cast<int>(rows));
}

// One epoch over `total` rows in minibatches of the permutation: gather(begin, rows, mine)
// fills the batch buffers with this rank's rows of the minibatch order[begin, begin + rows).
template <class Gather>
Metrics Trainer::State::epoch(std::int64_t total, Gather&& gather,
                              const ProgressCallback& progress) {
  order.resize(static_cast<std::size_t>(total));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (settings.shuffle) {
    // Fisher–Yates driven by (seed, epoch, i): the same permutation on every machine and rank.
    for (std::int64_t i = total - 1; i > 0; --i) {
      const std::uint64_t bits = detail::random_bits(settings.seed, detail::RngPurpose::shuffle,
                                                     static_cast<std::uint64_t>(epochs), i);
      std::swap(order[i], order[bits % static_cast<std::uint64_t>(i + 1)]);
    }
  }
  const std::int64_t batch = settings.batch_size;
  // Batch norm cannot train on one row: a last minibatch of one row is skipped this epoch
  // (with shuffling, a different row each epoch).
  const std::int64_t usable =
      !net.batch_norms.empty() && total % batch == 1 && total > 1 ? total - 1 : total;
  // An epoch that stopped inside continues after its steps done: the permutation is a function
  // of (seed, epoch), so the minibatches left are those an uninterrupted epoch trains.
  const std::int64_t skip = begin_epoch();
  if (skip > (usable + batch - 1) / batch) {
    epoch_step = 0;
    throw Error("train: the epoch was stopped after step " + std::to_string(skip) +
                ", but the data has only " + std::to_string((usable + batch - 1) / batch) +
                " steps (did the data change?)");
  }
  return run_epoch([&] {
    for (std::int64_t begin = skip * batch; begin < usable; begin += batch) {
      const int rows = static_cast<int>(std::min(batch, usable - begin));
      gather(begin, rows, rank_shards(rows));
      count_step(step(batch_features.data(), batch_targets.data(), rows), rows);
      if (progress) progress(begin + rows, usable);
      if (begin + rows < usable && stop_after_step()) throw EpochStopped{};
    }
    return epoch_metrics_so_far(/*finished=*/true);  // loss: the steps' own losses
  });
}

Metrics Trainer::train_epoch(const Dataset& data, const ProgressCallback& progress) {
  State& st = *state_;
  const auto inputs = static_cast<std::size_t>(st.net.spec.inputs);
  const auto width = static_cast<std::size_t>(st.target_width);
  detail::agree(st.comm, [&] {
    st.check_data(data, "train");
    if (data.rows == 0) throw Error("train: the dataset has no rows");
  });
  return st.epoch(
      data.rows,
      [&](std::int64_t begin, int, const detail::RankShards& mine) {
        for (int r = 0; r < mine.row_count; ++r) {
          const std::int64_t src = st.order[begin + mine.first_row + r];
          std::copy_n(data.features.data() + src * inputs, inputs,
                      st.batch_features.data() + r * inputs);
          std::copy_n(data.targets.data() + src * width, width,
                      st.batch_targets.data() + r * width);
        }
      },
      progress);
}

Metrics Trainer::train_epoch(const DatasetPart& part, const ProgressCallback& progress) {
  State& st = *state_;
  detail::agree(st.comm, [&] {
    st.check_data(part.rows, "train");
    if (part.total_rows == 0) throw Error("train: the dataset has no rows");
  });
  st.row_exchange.begin_epoch(part.first_row, part.rows.rows, part.total_rows);
  const auto inputs = static_cast<std::size_t>(st.net.spec.inputs);
  const auto width = static_cast<std::size_t>(st.target_width);
  return st.epoch(
      part.total_rows,
      [&](std::int64_t begin, int rows, const detail::RankShards&) {
        const std::span<const std::int64_t> batch = std::span<const std::int64_t>(st.order).subspan(
            static_cast<std::size_t>(begin), static_cast<std::size_t>(rows));
        st.row_exchange.gather(
            batch, detail::ShardPlan(rows, st.shards),
            [&](int p, float* x, float* t) {
              const std::int64_t r = batch[p] - part.first_row;
              std::copy_n(part.rows.features.data() + r * inputs, inputs, x);
              std::copy_n(part.rows.targets.data() + r * width, width, t);
            },
            st.batch_features.data(), st.batch_targets.data());
      },
      progress);
}

namespace {

// Inference-mode sums of a dataset or a stream, through the one evaluation pass evaluate_model
// uses too (nn/inference.hpp), added exactly: the same bits however the rows are split. Rows are
// numbered from first_row in messages.
template <class Feed>
detail::ExactMetricSums exact_sums(const detail::Network& net, std::int64_t first_row,
                                   std::int64_t& rows, Feed&& feed) {
  detail::ExactMetricSums total;
  detail::RowEvaluator evaluator(net, first_row, detail::TargetWording::trainer, "evaluate", &total,
                                 first_row);
  feed(evaluator);
  evaluator.finish();
  rows = evaluator.rows();
  return total;
}

// Every rank's sums merged (exact: the order does not matter) into the metrics of the whole.
// Collective.
Metrics combine_ranks(detail::Communicator& comm, const detail::ExactMetricSums& mine,
                      std::int64_t rows) {
  if (comm.size() == 1) return metrics_from(mine.value(), rows);
  constexpr std::size_t kWords = detail::ExactMetricSums::kSerializedWords;
  const auto words = mine.serialize();
  std::vector<std::uint64_t> all(kWords * static_cast<std::size_t>(comm.size()));
  comm.allgather(std::span<const std::uint64_t>(words), std::span<std::uint64_t>(all));
  std::int64_t total_rows = 0;
  for (std::int64_t n : comm.allgather(rows)) total_rows += n;
  detail::ExactMetricSums total;
  for (int r = 0; r < comm.size(); ++r) {
    total.merge(detail::ExactMetricSums::deserialize(std::span<const std::uint64_t, kWords>(
        all.data() + static_cast<std::size_t>(r) * kWords, kWords)));
  }
  return metrics_from(total.value(), total_rows);
}

}  // namespace

Metrics Trainer::evaluate(const Dataset& data) const {
  Metrics m;
  state_->run([&] {
    std::int64_t rows = 0;
    const detail::ExactMetricSums sums =
        exact_sums(state_->net, 0, rows, [&](detail::RowEvaluator& e) { e.add(data); });
    m = metrics_from(sums.value(), rows);
    state_->profiler.add_evaluated_rows(rows);
  });
  return m;
}

Metrics Trainer::evaluate(const DatasetPart& part) const {
  const State& st = *state_;
  detail::ExactMetricSums sums;
  std::int64_t rows = 0;
  detail::agree(st.comm, [&] {
    st.run([&] {
      sums = exact_sums(st.net, part.first_row, rows,
                        [&](detail::RowEvaluator& e) { e.add(part.rows); });
    });
  });
  st.profiler.add_evaluated_rows(rows);
  return combine_ranks(st.comm, sums, rows);
}

Metrics Trainer::evaluate(DataStream& stream) const {
  Metrics m;
  state_->run([&] {
    std::int64_t rows = 0;
    const detail::ExactMetricSums sums =
        exact_sums(state_->net, 0, rows, [&](detail::RowEvaluator& e) {
          for_each_chunk(stream, [&](const Dataset& chunk) { e.add(chunk); });
        });
    m = metrics_from(sums.value(), rows);
    state_->profiler.add_evaluated_rows(rows);
  });
  return m;
}

Metrics Trainer::evaluate(const StreamPart& part) const {
  const State& st = *state_;
  if (part.stream == nullptr) throw Error("evaluate: the stream part has no stream");
  detail::ExactMetricSums sums;
  std::int64_t rows = 0;
  detail::agree(st.comm, [&] {
    st.run([&] {
      sums = exact_sums(st.net, part.first_row, rows, [&](detail::RowEvaluator& e) {
        for_each_chunk(*part.stream, [&](const Dataset& chunk) { e.add(chunk); });
      });
    });
  });
  st.profiler.add_evaluated_rows(rows);
  return combine_ranks(st.comm, sums, rows);
}

// Rows are read into the shuffle buffer (read_into_buffer) and copied from there into the
// minibatch; the rows left in the buffer at the end leave in the drain's order.
Metrics Trainer::State::stream_epoch(DataStream& stream, const StreamRows& rows,
                                     const ProgressCallback& progress) {
  const int inputs = net.spec.inputs;
  const std::int64_t batch = settings.batch_size;

  // An epoch that stopped inside is read again from the start, its first `skip` minibatches
  // assembled through the shuffle buffer as before but not trained on.
  const std::int64_t skip = begin_epoch();
  std::int64_t to_skip = skip;
  int in_batch = 0;
  auto flush = [&](bool last) {
    const int count = in_batch;
    in_batch = 0;
    if (to_skip > 0) {
      --to_skip;
      return;
    }
    count_step(step(batch_features.data(), batch_targets.data(), count), count);
    if (progress) progress(epoch_rows, rows.rows);
    if (!last && stop_after_step()) throw EpochStopped{};
  };
  // A row joins the minibatch being assembled; a full minibatch is a step.
  auto emit = [&](const float* x, const float* t) {
    std::copy_n(x, inputs, batch_features.data() + static_cast<std::ptrdiff_t>(in_batch) * inputs);
    std::copy_n(t, target_width,
                batch_targets.data() + static_cast<std::ptrdiff_t>(in_batch) * target_width);
    if (++in_batch == batch) flush(/*last=*/false);
  };
  // Failures of the data (not of the steps) are a StreamPart's collective errors.
  auto reading = [&rows](auto&& f) {
    if (!rows.collective) return f();
    try {
      return f();
    } catch (const CollectiveError&) {
      throw;
    } catch (const std::exception& e) {
      throw CollectiveError(e.what());
    }
  };
  return run_epoch([&] {
    // The buffer holding every row of this stream in stream order is the state a new pass
    // would leave before the drain: a stream that fitted is read only once. An epoch stopped
    // inside forgets it, so the epoch that continues reads the stream again.
    const bool kept = rows.same_every_epoch && rows.rows > 0 && kept_stream == &stream &&
                      kept_first_row == rows.first_row && stream_shuffler.kept_rows() == rows.rows;
    kept_stream = nullptr;
    if (kept) {
      stream_shuffler.begin_kept(settings.seed, static_cast<std::uint64_t>(epochs));
    } else {
      read_into_buffer(stream, rows, emit, reading);
    }
    stream_shuffler.drain(emit);
    // As in the in-memory epoch, batch norm skips a last minibatch of one row.
    if (in_batch > 1 || (in_batch == 1 && net.batch_norms.empty())) flush(/*last=*/true);
    check_skipped(skip, to_skip);
    if (rows.same_every_epoch && rows.rows > 0 && stream_shuffler.kept_rows() == rows.rows) {
      kept_stream = &stream;
      kept_first_row = rows.first_row;
    }
    return epoch_metrics_so_far(/*finished=*/true);
  });
}

// The stream's rows into the shuffle buffer (those leaving it go to emit). The next chunk is
// parsed while this one's rows go through the buffer and the steps (for_each_chunk, in the
// trainer's arena, so reading and training share its threads).
template <class Emit, class Reading>
void Trainer::State::read_into_buffer(DataStream& stream, const StreamRows& rows, Emit& emit,
                                      Reading& reading) {
  const int inputs = net.spec.inputs;
  stream_shuffler.begin(shuffle_buffer_rows(), settings.seed, static_cast<std::uint64_t>(epochs));
  CheckedReads source(stream, reading);
  std::int64_t read = 0;
  run([&] {
    for_each_chunk(source, [&](const Dataset& chunk) {
      reading([&] {
        detail::check_data(net, chunk, rows.first_row + read, detail::TargetWording::trainer,
                           "train");
      });
      // Rows past those expected are not trained on, as a stream spread over ranks reads
      // exactly its part's rows.
      const std::int64_t take = rows.rows < 0 ? chunk.rows : std::min(chunk.rows, rows.rows - read);
      for (std::int64_t r = 0; r < take; ++r) {
        stream_shuffler.push(chunk.features.data() + r * inputs,
                             chunk.targets.data() + r * target_width, emit);
      }
      read += take;
    });
  });
  reading([&] {
    if (rows.rows >= 0 && read < rows.rows) {
      throw Error("train: the stream ended after " + std::to_string(read) + " of its " +
                  std::to_string(rows.rows) + " rows");
    }
    if (read == 0) throw Error("train: the stream has no rows");
  });
}

Metrics Trainer::train_epoch(DataStream& stream, const ProgressCallback& progress) {
  State& st = *state_;
  if (st.ranks > 1) {
    throw Error("train: across " + std::to_string(st.ranks) +
                " ranks a stream is one rank's part: pass a StreamPart");
  }
  return st.stream_epoch(stream, {}, progress);
}

Metrics Trainer::train_epoch(const StreamPart& part, const ProgressCallback& progress) {
  State& st = *state_;
  if (part.stream == nullptr) throw Error("train: the stream part has no stream");
  st.row_exchange.begin_epoch(part.first_row, part.rows, part.total_rows);
  if (part.total_rows == 0) throw CollectiveError("train: the stream has no rows");
  if (st.ranks == 1) {
    // SharedStreamShuffle gives one rank StreamShuffler's order: the same rows in the same
    // steps, read ahead of them.
    return st.stream_epoch(*part.stream, {part.first_row, part.rows, true, true}, progress);
  }
  const auto inputs = static_cast<std::size_t>(st.net.spec.inputs);
  const auto width = static_cast<std::size_t>(st.target_width);
  const std::size_t row_floats = inputs + width;
  const std::int64_t batch = st.settings.batch_size;
  st.shared_shuffle.begin(st.shuffle_buffer_rows(), st.settings.seed,
                          static_cast<std::uint64_t>(st.epochs), part.first_row, part.rows);
  st.staged.resize(static_cast<std::size_t>(batch) * row_floats);
  st.batch_rows.resize(static_cast<std::size_t>(batch));

  // This rank's rows, read as the shuffle asks for them. A failure is kept, not thrown: the
  // other ranks learn of it at the next step, and every rank throws then.
  std::string failure;
  Dataset chunk;
  std::int64_t chunk_at = 0, read = 0;
  auto read_row = [&](float* into) {
    try {
      if (!failure.empty()) throw Error(failure);
      while (chunk_at >= chunk.rows) {
        if (!part.stream->next(chunk)) {
          throw Error("train: the stream ended after " + std::to_string(read) + " of its " +
                      std::to_string(part.rows) + " rows");
        }
        detail::check_data(st.net, chunk, part.first_row + read, detail::TargetWording::trainer,
                           "train");
        chunk_at = 0;
      }
      std::copy_n(chunk.features.data() + chunk_at * static_cast<std::int64_t>(inputs), inputs,
                  into);
      std::copy_n(chunk.targets.data() + chunk_at * static_cast<std::int64_t>(width), width,
                  into + inputs);
      ++chunk_at;
      ++read;
    } catch (const std::exception& e) {
      if (failure.empty()) failure = e.what();
      std::fill_n(into, row_floats, 0.0f);
    }
  };
  try {
    part.stream->rewind();
  } catch (const std::exception& e) {
    failure = e.what();
  }

  // As in train_epoch(DataStream&): the steps done of a stopped epoch are assembled, not
  // trained (every rank skips the same ones).
  const std::int64_t skip = st.begin_epoch();
  std::int64_t to_skip = skip;
  int in_batch = 0;
  auto flush = [&](bool last) {
    if (to_skip > 0) {
      --to_skip;
      in_batch = 0;
      return;
    }
    detail::agree_on_failure(st.comm, failure);
    const std::span<const std::int64_t> rows(st.batch_rows.data(),
                                             static_cast<std::size_t>(in_batch));
    st.row_exchange.gather(
        rows, detail::ShardPlan(in_batch, st.shards),
        [&](int p, float* x, float* t) {
          const float* row = st.staged.data() + static_cast<std::size_t>(p) * row_floats;
          std::copy_n(row, inputs, x);
          std::copy_n(row + inputs, width, t);
        },
        st.batch_features.data(), st.batch_targets.data());
    const int count = in_batch;
    in_batch = 0;
    st.count_step(st.step(st.batch_features.data(), st.batch_targets.data(), count), count);
    if (progress) progress(st.epoch_rows, part.total_rows);
    if (!last && st.stop_after_step()) throw EpochStopped{};
  };
  auto emit = [&](std::int64_t row, const float* data) {
    st.batch_rows[static_cast<std::size_t>(in_batch)] = row;
    if (data != nullptr) {
      std::copy_n(data, row_floats,
                  st.staged.data() + static_cast<std::size_t>(in_batch) * row_floats);
    }
    if (++in_batch == batch) flush(/*last=*/false);
  };
  return st.run_epoch([&] {
    for (std::int64_t row = 0; row < part.total_rows; ++row)
      st.shared_shuffle.push(row, read_row, emit);
    st.shared_shuffle.drain(emit);
    // As in the in-memory epoch, batch norm skips a last minibatch of one row.
    if (in_batch > 1 || (in_batch == 1 && st.net.batch_norms.empty())) flush(/*last=*/true);
    detail::agree_on_failure(st.comm, failure);
    st.check_skipped(skip, to_skip);
    return st.epoch_metrics_so_far(/*finished=*/true);
  });
}

int Trainer::shard_count() const { return state_->shards; }
const Communicator& Trainer::communicator() const { return state_->communicator; }
double Trainer::communication_seconds() const {
  return state_->gradient_exchange ? state_->gradient_exchange->wait_seconds() : 0.0;
}
std::uint64_t Trainer::communication_bytes() const {
  return state_->gradient_exchange ? state_->gradient_exchange->bytes_sent() : 0;
}
int Trainer::epochs_completed() const { return state_->epochs; }
void Trainer::set_stop_flag(const StopFlag* flag) { state_->stop_flag = flag; }
int Trainer::stop_request() const { return state_->stop_request; }
void Trainer::set_step_callback(std::function<void()> after_step) {
  state_->after_step = std::move(after_step);
}
EpochPosition Trainer::epoch_position() const {
  const State& st = *state_;
  EpochPosition p;
  p.step = st.epoch_step;
  if (p.step == 0) return p;
  p.rows = st.epoch_rows;
  const detail::MetricSums& m = st.epoch_metrics;
  p.sums = {st.epoch_loss_sum, m.loss, m.correct, m.predictions, m.squared_error, m.outputs};
  return p;
}
std::int64_t Trainer::steps_completed() const { return state_->steps; }
double Trainer::learning_rate() const { return state_->learning_rate(); }
double Trainer::last_gradient_norm() const { return state_->gradient_norm; }
StepProfile Trainer::step_profile() const { return state_->profiler.profile(); }
void Trainer::reset_step_profile() { state_->profiler.reset(); }

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

void detail::TrainerAccess::set_epoch_position(Trainer& trainer, const EpochPosition& position) {
  if (position.step < 0 || position.rows < 0) {
    throw Error("epoch position must be >= 0, got step " + std::to_string(position.step) +
                ", rows " + std::to_string(position.rows));
  }
  Trainer::State& st = *trainer.state_;
  st.epoch_step = position.step;
  st.epoch_rows = position.rows;
  st.epoch_loss_sum = position.sums[0];
  st.epoch_metrics = {position.sums[1], position.sums[2], position.sums[3], position.sums[4],
                      position.sums[5]};
}

const TrainerSettings& Trainer::settings() const { return state_->settings; }

}  // namespace shardprop
