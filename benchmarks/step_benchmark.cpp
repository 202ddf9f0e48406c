// One training step (BM_Step) against the sgemm calls alone that the same sharded step makes
// (BM_GemmOnlyStep, the denominator of "step time / GEMM-only time"), both also over batch sizes
// (BM_StepBatch, BM_GemmOnlyStepBatch), where a step's time goes (BM_StepPhases), and the
// single-threaded sgemm rate of each shape of the medium network (BM_Sgemm). Leaves out epochs
// and data loading.
#include <benchmark/benchmark.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "base/aligned.hpp"
#include "base/blas.hpp"
#include "base/overloaded.hpp"
#include "blas_context.hpp"
#include "nn/network.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"
#include "train/gradient_buffer.hpp"
#include "train/shard_plan.hpp"

namespace {

using shardprop::detail::AlignedFloats;
using shardprop::detail::gemm;
using shardprop::detail::Transpose;

constexpr std::uint64_t kSeed = 1;
constexpr float kLearningRate = 0.01f;

struct NetworkCase {
  std::string name;
  shardprop::ModelSpec spec;
  int batch_size = 0;
  std::vector<int> shard_counts;  // 0 = the trainer's automatic choice
  shardprop::Optimizer optimizer = shardprop::Optimizer::sgd;
  float momentum = 0.0f;
};

NetworkCase small_case() {
  const std::vector<int> hidden{128, 128};
  return {
      "small",
      shardprop::ModelSpec::mlp(64, hidden, 10, shardprop::Activation::relu, shardprop::Loss::xent),
      256,
      {0}};
}

NetworkCase medium_case() {
  const std::vector<int> hidden{1024, 1024};
  return {"medium",
          shardprop::ModelSpec::mlp(784, hidden, 10, shardprop::Activation::relu,
                                    shardprop::Loss::xent),
          256,
          {0, 1, 2, 4}};
}

// The medium network with batch normalization after each hidden dense layer: its step time
// over medium's at the same threads and shards is the batch-norm overhead (target < 1.10).
NetworkCase medium_bn_case() {
  const std::vector<int> hidden{1024, 1024};
  return {"medium_bn",
          shardprop::ModelSpec::mlp(784, hidden, 10, shardprop::Activation::relu,
                                    shardprop::Loss::xent, /*batch_norm=*/true),
          256,
          {0, 1, 2, 4}};
}

// The medium network trained with momentum, with Adam, and with dropout 0.2 after each hidden
// activation: over medium's step time, the cost of each (the update reads and writes one or two
// more parameter-sized buffers; dropout draws one hash per element).
NetworkCase medium_variant(const std::string& name, shardprop::Optimizer optimizer, float momentum,
                           float dropout) {
  const std::vector<int> hidden{1024, 1024};
  NetworkCase c{"medium_" + name,
                shardprop::ModelSpec::mlp(784, hidden, 10, shardprop::Activation::relu,
                                          shardprop::Loss::xent, false, dropout),
                256,
                {0}};
  c.optimizer = optimizer;
  c.momentum = momentum;
  return c;
}

// The textbook 2-3-2 network: sigmoid on the output too, trained on squared error.
NetworkCase tiny_case() {
  shardprop::ModelSpec spec;
  spec.inputs = 2;
  spec.layers = {shardprop::DenseSpec{3}, shardprop::ActivationSpec{shardprop::Activation::sigmoid},
                 shardprop::DenseSpec{2},
                 shardprop::ActivationSpec{shardprop::Activation::sigmoid}};
  spec.loss = shardprop::Loss::mse;
  return {"tiny", spec, 4, {0}};
}

// The dense layers' shapes and weight offsets, in layer order.
std::vector<shardprop::detail::Dense> dense_layers(const shardprop::detail::Network& net) {
  std::vector<shardprop::detail::Dense> dense;
  for (const shardprop::detail::Layer& layer : net.layers) {
    std::visit(shardprop::detail::Overloaded{
                   [&](const shardprop::detail::Dense& d) { dense.push_back(d); },
                   [](const shardprop::detail::ActivationLayer&) {},
                   [](const shardprop::detail::BatchNorm&) {},
                   [](const shardprop::detail::Dropout&) {},
               },
               layer);
  }
  return dense;
}

// Elements of the dense weight matrices: a forward pass does 2 FLOPs per weight per row.
double weight_count(const shardprop::detail::Network& net) {
  double weights = 0.0;
  for (const shardprop::detail::Dense& d : dense_layers(net)) {
    weights += static_cast<double>(d.in) * d.out;
  }
  return weights;
}

// FLOPs of one training step per row, as the products really run: per dense layer 2·in·out for
// z = x·Wᵀ and 2·in·out for dW, and 2·in·out for dx in every layer but the first, which has no
// input gradient to compute (the usual 6·weights overstates the medium step by about 14%).
// Element-wise work is not counted. Fractions of the FMA peak are honest only with this count.
double step_flops_per_row(const shardprop::detail::Network& net) {
  const std::vector<shardprop::detail::Dense> layers = dense_layers(net);
  double flops = 0.0;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const double weights = static_cast<double>(layers[l].in) * layers[l].out;
    flops += (l == 0 ? 4.0 : 6.0) * weights;
  }
  return flops;
}

void fill_uniform(std::span<float> values, std::mt19937_64& engine) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (float& v : values) {
    v = uniform(engine);
  }
}

// A fixed random minibatch: features in [-1, 1); class indices for xent, values in [0, 1)
// otherwise.
struct Minibatch {
  std::vector<float> features;
  std::vector<float> targets;
};

Minibatch make_minibatch(const shardprop::Model& model, int rows) {
  std::mt19937_64 engine(kSeed);
  Minibatch batch;
  batch.features.resize(static_cast<std::size_t>(rows) * model.inputs());
  fill_uniform(batch.features, engine);
  if (model.spec().loss == shardprop::Loss::xent) {
    std::uniform_int_distribution<int> label(0, model.outputs() - 1);
    batch.targets.resize(static_cast<std::size_t>(rows));
    for (float& t : batch.targets) {
      t = static_cast<float>(label(engine));
    }
  } else {
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    batch.targets.resize(static_cast<std::size_t>(rows) * model.outputs());
    for (float& t : batch.targets) {
      t = uniform(engine);
    }
  }
  return batch;
}

// Rates per second of real time: "samples" and "FLOP" (shown as k/s, G/s); "shards" is the
// shard count the step used.
void set_step_counters(benchmark::State& state, double flops_per_row, int rows, int shards) {
  state.counters["samples"] =
      benchmark::Counter(rows, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP"] =
      benchmark::Counter(flops_per_row * rows, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["shards"] = shards;
}

// 1, 2, 4, … up to the machine's core count, and the core count itself.
std::vector<int> thread_counts() {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<int> counts;
  for (int t = 1; t < cores; t *= 2) counts.push_back(t);
  counts.push_back(cores);
  return counts;
}

int core_count() { return thread_counts().back(); }

// The batch sizes of BM_StepBatch and BM_GemmOnlyStepBatch.
constexpr int kBatchSizes[] = {32, 64, 128, 256, 512, 1024};

shardprop::TrainerSettings step_settings(const NetworkCase& c, int threads, int shards,
                                         int batch_size) {
  shardprop::TrainerSettings settings;
  settings.threads = threads;
  settings.shards = shards;
  settings.batch_size = batch_size;
  settings.learning_rate = kLearningRate;
  settings.shuffle = false;
  settings.optimizer = c.optimizer;
  settings.momentum = c.momentum;
  return settings;
}

// Trainer::step on one fixed minibatch of batch_size rows (shards 0 = automatic), set up and
// with one untimed step taken: page faults on the workspaces, TBB workers joining the arena.
class TrainerStep {
 public:
  TrainerStep(const NetworkCase& c, int threads, int shards, int batch_size) : model_(c.spec) {
    model_.initialize(kSeed);
    trainer_.emplace(model_, step_settings(c, threads, shards, batch_size));
    batch_ = make_minibatch(model_, batch_size);
    run();
  }

  double run() { return loss_ = trainer_->step(batch_.features, batch_.targets); }
  double loss() const { return loss_; }
  int shards() const { return trainer_->shard_count(); }
  double flops_per_row() const { return step_flops_per_row(shardprop::detail::network_of(model_)); }

 private:
  shardprop::Model model_;
  std::optional<shardprop::Trainer> trainer_;
  Minibatch batch_;
  double loss_ = 0.0;
};

void run_step(benchmark::State& state, const NetworkCase& c, int threads, int shards,
              int batch_size) {
  try {
    TrainerStep step(c, threads, shards, batch_size);
    for (auto _ : state) {
      benchmark::DoNotOptimize(step.run());
    }
    if (!std::isfinite(step.loss())) {
      state.SkipWithError("the step's loss is not finite");
    }
    set_step_counters(state, step.flops_per_row(), batch_size, step.shards());
  } catch (const shardprop::Error& e) {
    state.SkipWithError(e.what());
  }
}

// Args: threads, shards (0 = automatic).
void BM_Step(benchmark::State& state, const NetworkCase& c) {
  run_step(state, c, static_cast<int>(state.range(0)), static_cast<int>(state.range(1)),
           c.batch_size);
}

// Args: batch size, threads; automatic shards.
void BM_StepBatch(benchmark::State& state, const NetworkCase& c) {
  run_step(state, c, static_cast<int>(state.range(1)), 0, static_cast<int>(state.range(0)));
}

// Args: threads; automatic shards. The step with profile_phases on, and where its time went:
// plain counters (no rate flags) in microseconds per step, each already divided by the
// iteration count here, in StepProfile's wall-clock convention (the pass parts are
// thread-seconds / slots). other_us is the step's time outside the named parts (bookkeeping);
// clock reads make it come out slightly negative at times, so it is clamped at 0.
void BM_StepPhases(benchmark::State& state, const NetworkCase& c) {
  shardprop::TrainerSettings settings =
      step_settings(c, static_cast<int>(state.range(0)), 0, c.batch_size);
  settings.profile_phases = true;
  try {
    shardprop::Model model(c.spec);
    model.initialize(kSeed);
    shardprop::Trainer trainer(model, settings);
    const Minibatch batch = make_minibatch(model, c.batch_size);
    double loss = trainer.step(batch.features, batch.targets);  // untimed, as in BM_Step
    trainer.reset_step_profile();
    for (auto _ : state) {
      loss = trainer.step(batch.features, batch.targets);
      benchmark::DoNotOptimize(loss);
    }
    if (!std::isfinite(loss)) {
      state.SkipWithError("the step's loss is not finite");
    }
    const shardprop::StepProfile p = trainer.step_profile();
    const double per_step_us = 1e6 / static_cast<double>(std::max<std::int64_t>(1, p.steps));
    const double named = p.forward_gemm + p.forward_elementwise + p.backward_gemm +
                         p.backward_elementwise + p.batch_norm_sync + p.reduction_update +
                         p.exchange + p.idle;
    auto report = [&](const char* name, double seconds) {
      state.counters[name] = benchmark::Counter(seconds * per_step_us);
    };
    report("forward_gemm_us", p.forward_gemm);
    report("forward_elementwise_us", p.forward_elementwise);
    report("backward_gemm_us", p.backward_gemm);
    report("backward_elementwise_us", p.backward_elementwise);
    report("batch_norm_sync_us", p.batch_norm_sync);
    report("reduction_update_us", p.reduction_update);
    report("exchange_us", p.exchange);
    report("idle_us", p.idle);
    report("other_us", std::max(0.0, p.total - named));
    report("step_us", p.total);
    state.counters["shards"] = trainer.shard_count();
  } catch (const shardprop::Error& e) {
    state.SkipWithError(e.what());
  }
}

// Args: threads. Trainer::evaluate over 16 minibatches' rows held in memory: the forward pass
// in inference mode and the metrics. "FLOP" counts the forward pass's 2·weights per row, so its
// rate is comparable with BM_Step's (the products of forward and backward, step_flops_per_row).
void BM_Evaluate(benchmark::State& state, const NetworkCase& c) {
  shardprop::TrainerSettings settings;
  settings.threads = static_cast<int>(state.range(0));
  settings.batch_size = c.batch_size;
  const int rows = 16 * c.batch_size;
  try {
    shardprop::Model model(c.spec);
    model.initialize(kSeed);
    const shardprop::Trainer trainer(model, settings);
    const Minibatch batch = make_minibatch(model, rows);
    shardprop::Dataset data;
    data.rows = rows;
    data.feature_count = model.inputs();
    data.target_width = static_cast<int>(batch.targets.size() / static_cast<std::size_t>(rows));
    data.features = batch.features;
    data.targets = batch.targets;
    shardprop::Metrics m = trainer.evaluate(data);  // untimed: first touch of the workspaces
    for (auto _ : state) {
      m = trainer.evaluate(data);
      benchmark::DoNotOptimize(m);
    }
    const double weights = weight_count(shardprop::detail::network_of(model));
    state.counters["samples"] =
        benchmark::Counter(rows, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["FLOP"] =
        benchmark::Counter(2.0 * weights * rows, benchmark::Counter::kIsIterationInvariantRate);
  } catch (const shardprop::Error& e) {
    state.SkipWithError(e.what());
  }
}

// What one shard's GEMM-only pass writes. inputs[l] (l > 0) stands in for the activations that
// feed dense layer l, delta[l] for dL/dz of layer l: fixed random values of the right shapes.
struct GemmShard {
  std::vector<AlignedFloats> inputs;  // [rows, in]; inputs[0] unused (the minibatch rows)
  std::vector<AlignedFloats> z;       // [rows, out]
  std::vector<AlignedFloats> delta;   // [rows, out]
  AlignedFloats dx;                   // [rows, largest in]
};

// The sgemm calls of BM_Step's sharded step and nothing else: per shard, z = x·Wᵀ for every
// dense layer, then in reverse dW = δᵀ·x for every layer and dx = δ·W for all but the first,
// with the same transposes, strides and beta as dense.cpp. requested shards 0 = automatic;
// threads 0 = the caller's arena, as TrainerSettings::threads. Set up with one untimed step
// taken, as TrainerStep.
class GemmOnlyStep {
 public:
  GemmOnlyStep(const NetworkCase& c, int threads, int requested, int batch_size)
      : model_(c.spec),
        plan_(batch_size,
              requested > 0 ? requested : shardprop::default_shard_count(c.spec, batch_size)),
        parallel_((threads > 0 ? threads : tbb::this_task_arena::max_concurrency()) > 1 &&
                  plan_.shards > 1) {
    if (threads > 0) arena_.emplace(threads);
    model_.initialize(kSeed);
    const shardprop::detail::Network& net = shardprop::detail::network_of(model_);
    layers_ = dense_layers(net);
    inputs_ = c.spec.inputs;
    batch_ = make_minibatch(model_, batch_size);
    std::mt19937_64 engine(kSeed + 1);
    work_.resize(static_cast<std::size_t>(plan_.shards));
    int largest_in = 0;
    for (const shardprop::detail::Dense& d : layers_) largest_in = std::max(largest_in, d.in);
    for (int s = 0; s < plan_.shards; ++s) {
      const auto rows = static_cast<std::size_t>(plan_.size(s));
      GemmShard& w = work_[static_cast<std::size_t>(s)];
      for (const shardprop::detail::Dense& d : layers_) {
        w.inputs.emplace_back(rows * static_cast<std::size_t>(d.in), 0.0f);
        w.z.emplace_back(rows * static_cast<std::size_t>(d.out), 0.0f);
        w.delta.emplace_back(rows * static_cast<std::size_t>(d.out), 0.0f);
        fill_uniform(w.inputs.back(), engine);
        fill_uniform(w.delta.back(), engine);
      }
      w.dx.assign(rows * static_cast<std::size_t>(largest_in), 0.0f);
    }
    gradients_.emplace(plan_.shards, net.parameter_count);
    const shardprop::detail::SingleThreadedBlas one_blas_thread;
    run();
  }

  // One step, with the same dispatch as the trainer: one task per shard in its arena.
  // REQUIRES: a SingleThreadedBlas held, as the trainer holds one during a step (held
  // across many steps here, so the roof leaves out what setting the thread count costs).
  void run() {
    if (!parallel_) {
      for (int s = 0; s < plan_.shards; ++s) run_shard(s);
      return;
    }
    auto shards = [&] {
      tbb::parallel_for(
          tbb::blocked_range<int>(0, plan_.shards, 1),
          [&](const tbb::blocked_range<int>& r) {
            for (int s = r.begin(); s < r.end(); ++s) run_shard(s);
          },
          tbb::simple_partitioner());
    };
    if (arena_) {
      arena_->execute(shards);
    } else {
      shards();
    }
  }

  int shards() const { return plan_.shards; }
  double flops_per_row() const { return step_flops_per_row(shardprop::detail::network_of(model_)); }

 private:
  void run_shard(int s) {
    GemmShard& w = work_[static_cast<std::size_t>(s)];
    const int rows = plan_.size(s);
    const float* x = batch_.features.data() + static_cast<std::ptrdiff_t>(plan_.begin(s)) * inputs_;
    const float* params = model_.parameters().data();
    float* grads = gradients_->shard(s);
    auto input = [&](std::size_t l) { return l == 0 ? x : w.inputs[l].data(); };
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      const shardprop::detail::Dense& d = layers_[l];
      gemm(Transpose::no, Transpose::yes, rows, d.out, d.in, 1.0f, input(l), d.in,
           params + d.weight, d.in, 1.0f, w.z[l].data(), d.out);
    }
    for (std::size_t l = layers_.size(); l-- > 0;) {
      const shardprop::detail::Dense& d = layers_[l];
      gemm(Transpose::yes, Transpose::no, d.out, d.in, rows, 1.0f, w.delta[l].data(), d.out,
           input(l), d.in, 0.0f, grads + d.weight, d.in);
      if (l > 0) {
        gemm(Transpose::no, Transpose::no, rows, d.in, d.out, 1.0f, w.delta[l].data(), d.out,
             params + d.weight, d.in, 0.0f, w.dx.data(), d.in);
      }
    }
  }

  shardprop::Model model_;
  shardprop::detail::ShardPlan plan_;
  bool parallel_;
  std::optional<tbb::task_arena> arena_;
  std::vector<shardprop::detail::Dense> layers_;
  int inputs_ = 0;
  Minibatch batch_;
  std::vector<GemmShard> work_;
  std::optional<shardprop::detail::GradientBuffers> gradients_;
};

void run_gemm_only_step(benchmark::State& state, const NetworkCase& c, int threads, int requested,
                        int batch_size) {
  GemmOnlyStep roof(c, threads, requested, batch_size);
  const shardprop::detail::SingleThreadedBlas one_blas_thread;
  for (auto _ : state) {
    roof.run();
    benchmark::ClobberMemory();
  }
  set_step_counters(state, roof.flops_per_row(), batch_size, roof.shards());
}

// Args: threads, shards (0 = automatic).
void BM_GemmOnlyStep(benchmark::State& state, const NetworkCase& c) {
  run_gemm_only_step(state, c, static_cast<int>(state.range(0)), static_cast<int>(state.range(1)),
                     c.batch_size);
}

// Args: batch size, threads; automatic shards.
void BM_GemmOnlyStepBatch(benchmark::State& state, const NetworkCase& c) {
  run_gemm_only_step(state, c, static_cast<int>(state.range(1)), 0,
                     static_cast<int>(state.range(0)));
}

// Median of values (moved from).
double median_of(std::vector<double> values) {
  if (values.empty()) return 0.0;
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

// Args: threads, batch size; automatic shards. BM_Step and BM_GemmOnlyStep of the same case
// alternately in one loop: each iteration times a run of steps and a run of GEMM-only steps
// (which goes first alternates), so a shared machine's drift in speed, which can move two
// separate benchmarks' times further apart than the gap being measured, falls on both alike.
// Plain counters: step_us and roof_us, the medians over iterations of a step's and a GEMM-only
// step's time, and of_roof, the median of the iterations' roof/step ratios: the fraction of
// its roof the step runs at. A run is as many steps as make about 200 µs, so that the clock
// reads do not weigh on a step of a microsecond. Both run in one arena of `threads`, the
// trainer with TrainerSettings::threads 0 (the caller's arena).
void BM_StepAndRoof(benchmark::State& state, const NetworkCase& c) {
  using Clock = std::chrono::steady_clock;
  const int threads = static_cast<int>(state.range(0));
  const int batch_size = static_cast<int>(state.range(1));
  // One arena for both, whose threads stay with it, as in training: with an arena each, the
  // worker threads would move between them at every switch.
  tbb::task_arena arena(threads);
  arena.execute([&] {
    try {
      TrainerStep step(c, 0, 0, batch_size);
      GemmOnlyStep roof(c, 0, 0, batch_size);
      const Clock::time_point probe = Clock::now();
      step.run();
      const double probe_seconds = std::chrono::duration<double>(Clock::now() - probe).count();
      const int runs =
          static_cast<int>(std::clamp(200e-6 / std::max(probe_seconds, 1e-9), 1.0, 1e5));
      auto seconds_per_step = [runs](auto&& run) {
        const Clock::time_point start = Clock::now();
        for (int i = 0; i < runs; ++i) run();
        return std::chrono::duration<double>(Clock::now() - start).count() / runs;
      };
      auto step_steps = [&] {
        return seconds_per_step([&] { benchmark::DoNotOptimize(step.run()); });
      };
      auto roof_steps = [&] {
        const shardprop::detail::SingleThreadedBlas one_blas_thread;
        return seconds_per_step([&] { roof.run(); });
      };
      std::vector<double> step_seconds;
      std::vector<double> roof_seconds;
      std::vector<double> ratios;
      bool step_first = true;
      for (auto _ : state) {
        double step_time = 0.0;
        double roof_time = 0.0;
        if (step_first) {
          step_time = step_steps();
          roof_time = roof_steps();
        } else {
          roof_time = roof_steps();
          step_time = step_steps();
        }
        benchmark::ClobberMemory();
        step_first = !step_first;
        step_seconds.push_back(step_time);
        roof_seconds.push_back(roof_time);
        ratios.push_back(roof_time / step_time);
      }
      if (!std::isfinite(step.loss())) {
        state.SkipWithError("the step's loss is not finite");
      }
      state.counters["step_us"] = median_of(step_seconds) * 1e6;
      state.counters["roof_us"] = median_of(roof_seconds) * 1e6;
      state.counters["of_roof"] = median_of(ratios);
      state.counters["shards"] = step.shards();
    } catch (const shardprop::Error& e) {
      state.SkipWithError(e.what());
    }
  });
}

// One product as dense.cpp issues it: C[m,n] = op(A)[m,k]·op(B)[k,n] + beta·C.
struct GemmShape {
  std::string name;
  Transpose trans_a = Transpose::no;
  Transpose trans_b = Transpose::no;
  int m = 0;
  int n = 0;
  int k = 0;
  float beta = 0.0f;
};

// Every product of one unsharded step of the network at `rows` rows.
std::vector<GemmShape> step_gemm_shapes(const shardprop::detail::Network& net, int rows) {
  std::vector<GemmShape> shapes;
  const std::vector<shardprop::detail::Dense> layers = dense_layers(net);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const shardprop::detail::Dense& d = layers[l];
    const std::string layer = "layer" + std::to_string(l);
    shapes.push_back(
        {layer + "_forward_NT", Transpose::no, Transpose::yes, rows, d.out, d.in, 1.0f});
    shapes.push_back({layer + "_dW_TN", Transpose::yes, Transpose::no, d.out, d.in, rows, 0.0f});
    if (l > 0) {
      shapes.push_back({layer + "_dx_NN", Transpose::no, Transpose::no, rows, d.in, d.out, 0.0f});
    }
  }
  return shapes;
}

// Args: m, n, k (only for the name: the shape carries them). Single-threaded BLAS, as in a task.
void BM_Sgemm(benchmark::State& state, const GemmShape& shape) {
  const int m = shape.m;
  const int n = shape.n;
  const int k = shape.k;
  // Row-major storage of A and B as the transposes require.
  const int lda = shape.trans_a == Transpose::yes ? m : k;
  const int ldb = shape.trans_b == Transpose::yes ? k : n;
  std::mt19937_64 engine(kSeed);
  AlignedFloats a(static_cast<std::size_t>(m) * k);
  AlignedFloats b(static_cast<std::size_t>(k) * n);
  AlignedFloats c(static_cast<std::size_t>(m) * n, 0.0f);
  fill_uniform(a, engine);
  fill_uniform(b, engine);
  const shardprop::detail::SingleThreadedBlas one_blas_thread;
  for (auto _ : state) {
    gemm(shape.trans_a, shape.trans_b, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, shape.beta,
         c.data(), n);
    benchmark::ClobberMemory();
  }
  state.counters["FLOP"] =
      benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
}

void register_benchmarks() {
  const std::vector<int> threads_list = thread_counts();
  for (const NetworkCase& c : {small_case(), medium_case(), tiny_case()}) {
    auto* step = benchmark::RegisterBenchmark(("BM_Step/" + c.name).c_str(), BM_Step, c);
    auto* gemm_only =
        benchmark::RegisterBenchmark(("BM_GemmOnlyStep/" + c.name).c_str(), BM_GemmOnlyStep, c);
    for (auto* b : {step, gemm_only}) {
      b->ArgNames({"threads", "shards"})->UseRealTime()->Unit(benchmark::kMicrosecond);
      for (int threads : threads_list) {
        for (int shards : c.shard_counts) {
          b->Args({threads, shards});
        }
      }
    }
  }
  for (const NetworkCase& c : {small_case(), medium_case()}) {
    auto* evaluate =
        benchmark::RegisterBenchmark(("BM_Evaluate/" + c.name).c_str(), BM_Evaluate, c);
    evaluate->ArgNames({"threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
    for (int threads : threads_list) evaluate->Args({threads});
  }
  // Batch norm adds no products, so its GEMM-only step is medium's.
  const NetworkCase medium_bn = medium_bn_case();
  auto* bn_step =
      benchmark::RegisterBenchmark(("BM_Step/" + medium_bn.name).c_str(), BM_Step, medium_bn);
  bn_step->ArgNames({"threads", "shards"})->UseRealTime()->Unit(benchmark::kMicrosecond);
  for (int threads : threads_list) {
    for (int shards : medium_bn.shard_counts) bn_step->Args({threads, shards});
  }
  for (const NetworkCase& variant :
       {medium_variant("momentum", shardprop::Optimizer::sgd, 0.9f, 0.0f),
        medium_variant("adam", shardprop::Optimizer::adam, 0.0f, 0.0f),
        medium_variant("dropout", shardprop::Optimizer::sgd, 0.0f, 0.2f)}) {
    auto* b = benchmark::RegisterBenchmark(("BM_Step/" + variant.name).c_str(), BM_Step, variant);
    b->ArgNames({"threads", "shards"})->UseRealTime()->Unit(benchmark::kMicrosecond);
    for (int threads : threads_list) b->Args({threads, 0});
  }
  const NetworkCase medium = medium_case();
  // GFLOP/s against the batch size, on every core.
  auto* step_batch =
      benchmark::RegisterBenchmark(("BM_StepBatch/" + medium.name).c_str(), BM_StepBatch, medium);
  auto* gemm_batch = benchmark::RegisterBenchmark(("BM_GemmOnlyStepBatch/" + medium.name).c_str(),
                                                  BM_GemmOnlyStepBatch, medium);
  for (auto* b : {step_batch, gemm_batch}) {
    b->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
    for (int batch : kBatchSizes) b->Args({batch, core_count()});
  }
  // The step against its roof in one loop: every step network at every thread count, and
  // medium at every batch size on every core.
  for (const NetworkCase& c : {small_case(), medium, tiny_case(), medium_bn}) {
    auto* pair =
        benchmark::RegisterBenchmark(("BM_StepAndRoof/" + c.name).c_str(), BM_StepAndRoof, c);
    pair->ArgNames({"threads", "batch"})->UseRealTime()->Unit(benchmark::kMicrosecond);
    for (int threads : threads_list) pair->Args({threads, c.batch_size});
    if (c.name == medium.name) {
      for (int batch : kBatchSizes) {
        if (batch != c.batch_size) pair->Args({core_count(), batch});
      }
    }
  }
  for (const NetworkCase& c : {small_case(), medium, medium_bn}) {
    auto* phases =
        benchmark::RegisterBenchmark(("BM_StepPhases/" + c.name).c_str(), BM_StepPhases, c);
    phases->ArgNames({"threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
    phases->Args({1});
    if (core_count() > 1) phases->Args({core_count()});
  }
  const shardprop::detail::Network net(medium.spec);
  for (const GemmShape& shape : step_gemm_shapes(net, medium.batch_size)) {
    benchmark::RegisterBenchmark(("BM_Sgemm/" + medium.name + "/" + shape.name).c_str(), BM_Sgemm,
                                 shape)
        ->Args({shape.m, shape.n, shape.k})
        ->ArgNames({"m", "n", "k"})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  shardprop::bench::add_blas_context();
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
