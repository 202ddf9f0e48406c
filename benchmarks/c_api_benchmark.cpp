// What the C API costs over the C++ one: a tiny step (the per-call overhead of the boundary and
// its checks) and an epoch of the small network (shardprop_trainer_train_epoch copies its
// arrays once per call). Same model, settings and data on both sides, in one run.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shardprop.h"
#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"

namespace {

struct Case {
  std::string name;
  std::string layers;
  int inputs = 0;
  int classes = 0;
  int batch_size = 0;
  std::int64_t rows = 0;  // rows per epoch
};

const Case kTiny{"tiny", "dense(3) sigmoid dense(2)", 2, 2, 4, 4};
const Case kSmall{"small", "dense(128) relu dense(128) relu dense(10)", 64, 10, 256, 16384};

shardprop::Dataset make_data(const Case& c) {
  std::mt19937_64 bits(1);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  shardprop::Dataset d;
  d.rows = c.rows;
  d.feature_count = c.inputs;
  for (std::int64_t i = 0; i < c.rows * c.inputs; ++i) d.features.push_back(value(bits));
  for (std::int64_t i = 0; i < c.rows; ++i) {
    d.targets.push_back(static_cast<float>(i % c.classes));
  }
  return d;
}

// The same model and one-thread trainer through each API.
struct BothApis {
  shardprop_model* model = nullptr;
  shardprop_trainer* trainer = nullptr;
  std::unique_ptr<shardprop::Model> cpp_model;
  std::unique_ptr<shardprop::Trainer> cpp_trainer;

  explicit BothApis(const Case& c) {
    shardprop_trainer_settings settings;
    shardprop_trainer_settings_init(&settings);
    settings.batch_size = c.batch_size;
    settings.threads = 1;
    if (shardprop_model_create(c.layers.c_str(), c.inputs, "xent", 1, &model) != SHARDPROP_OK ||
        shardprop_trainer_create(model, &settings, &trainer) != SHARDPROP_OK) {
      return;  // ok() is false; shardprop_last_error() says why
    }
    cpp_model = std::make_unique<shardprop::Model>(
        shardprop::ModelSpec{c.inputs, shardprop::parse_layers(c.layers), shardprop::Loss::xent});
    cpp_model->initialize(1);
    shardprop::TrainerSettings cpp_settings;
    cpp_settings.batch_size = c.batch_size;
    cpp_settings.threads = 1;
    cpp_trainer = std::make_unique<shardprop::Trainer>(*cpp_model, cpp_settings);
  }
  ~BothApis() {
    shardprop_trainer_free(trainer);
    shardprop_model_free(model);
  }
  BothApis(const BothApis&) = delete;
  BothApis& operator=(const BothApis&) = delete;
  bool ok() const { return trainer != nullptr; }
};

// Args: 0 = C++ API, 1 = C API. Times one step on the first batch_size rows.
void BM_ApiStep(benchmark::State& state, const Case& c) {
  const shardprop::Dataset data = make_data(c);
  const auto rows = static_cast<std::size_t>(c.batch_size);
  const std::span<const float> x(data.features.data(), rows * c.inputs);
  const std::span<const float> t(data.targets.data(), rows);
  BothApis apis(c);
  if (!apis.ok()) {
    state.SkipWithError(shardprop_last_error());
    return;
  }
  const bool through_c = state.range(0) == 1;
  for (auto _ : state) {
    double loss = 0.0;
    if (through_c) {
      shardprop_trainer_step(apis.trainer, x.data(), t.data(), c.batch_size, c.inputs, 1, &loss);
    } else {
      loss = apis.cpp_trainer->step(x, t);
    }
    benchmark::DoNotOptimize(loss);
  }
  state.counters["samples"] =
      benchmark::Counter(c.batch_size, benchmark::Counter::kIsIterationInvariantRate);
}

// Args: 0 = C++ API (a Dataset), 1 = C API (caller-owned arrays). One epoch, 1 thread.
void BM_ApiEpoch(benchmark::State& state, const Case& c) {
  const shardprop::Dataset data = make_data(c);
  BothApis apis(c);
  if (!apis.ok()) {
    state.SkipWithError(shardprop_last_error());
    return;
  }
  const bool through_c = state.range(0) == 1;
  for (auto _ : state) {
    if (through_c) {
      shardprop_metrics m;
      shardprop_trainer_train_epoch(apis.trainer, data.features.data(), data.targets.data(),
                                    data.rows, c.inputs, 1, &m);
      benchmark::DoNotOptimize(m);
    } else {
      benchmark::DoNotOptimize(apis.cpp_trainer->train_epoch(data));
    }
  }
  state.counters["samples"] = benchmark::Counter(static_cast<double>(c.rows),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("shardprop_version", shardprop::version());
  benchmark::AddCustomContext("openblas_core", shardprop::blas_core_name());
  benchmark::RegisterBenchmark("BM_ApiStep/tiny", BM_ApiStep, kTiny)
      ->ArgName("c_api")
      ->Arg(0)
      ->Arg(1)
      ->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("BM_ApiEpoch/small", BM_ApiEpoch, kSmall)
      ->ArgName("c_api")
      ->Arg(0)
      ->Arg(1)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
