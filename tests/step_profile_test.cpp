// Trainer::step_profile: the row counts are always kept and show an epoch computes each row
// once; the phase times are zero when profiling is off, add up to the step's wall time when
// on, and never change the weights. Leaves out how fast anything is (the benchmarks).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"

namespace {

using shardprop::Activation;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::StepProfile;
using shardprop::Trainer;
using shardprop::TrainerSettings;

constexpr int kInputs = 64;
constexpr int kClasses = 10;
constexpr int kBatch = 256;

// 64 → 256 → relu → 256 → relu → 10 (batch norm after each hidden dense layer if asked): big
// enough at batch 256 that every part of a step takes measurable time.
ModelSpec spec(bool batch_norm) {
  const int hidden[] = {256, 256};
  return ModelSpec::mlp(kInputs, hidden, kClasses, Activation::relu, Loss::xent, batch_norm);
}

shardprop::Dataset make_dataset(std::int64_t rows, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  shardprop::Dataset data;
  data.rows = rows;
  data.feature_count = kInputs;
  data.target_width = 1;
  for (std::int64_t i = 0; i < rows * kInputs; ++i) data.features.push_back(uniform(rng));
  for (std::int64_t r = 0; r < rows; ++r) {
    data.targets.push_back(static_cast<float>(rng() % kClasses));
  }
  return data;
}

TrainerSettings settings(bool profile) {
  TrainerSettings s;
  s.threads = 2;
  s.shards = 2;
  s.batch_size = kBatch;
  s.learning_rate = 0.05f;
  s.shuffle = true;
  s.profile_phases = profile;
  return s;
}

// Runs `steps` steps on the dataset's first minibatch.
void run_steps(Trainer& trainer, const shardprop::Dataset& data, int steps) {
  const std::span<const float> x(data.features.data(), static_cast<std::size_t>(kBatch) * kInputs);
  const std::span<const float> t(data.targets.data(), static_cast<std::size_t>(kBatch));
  for (int i = 0; i < steps; ++i) trainer.step(x, t);
}

// The parts StepProfile documents as adding up to total.
double sum_of_parts(const StepProfile& p) {
  return p.forward_gemm + p.forward_elementwise + p.backward_gemm + p.backward_elementwise +
         p.idle + p.batch_norm_sync + p.reduction_update + p.exchange;
}

}  // namespace

TEST_CASE("With profiling off the step profile counts steps and rows and times nothing",
          "[profile]") {
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(batch_norm);
  Model model(spec(batch_norm));
  model.initialize(3);
  Trainer trainer(model, settings(/*profile=*/false));
  const shardprop::Dataset data = make_dataset(kBatch, 5);
  run_steps(trainer, data, 3);

  const StepProfile p = trainer.step_profile();
  CHECK(p.steps == 3);
  CHECK(p.training_rows == 3 * kBatch);
  CHECK(p.evaluated_rows == 0);
  CHECK(p.forward_gemm == 0.0);
  CHECK(p.forward_elementwise == 0.0);
  CHECK(p.backward_gemm == 0.0);
  CHECK(p.backward_elementwise == 0.0);
  CHECK(p.idle == 0.0);
  CHECK(p.batch_norm_sync == 0.0);
  CHECK(p.reduction_update == 0.0);
  CHECK(p.exchange == 0.0);
  CHECK(p.total == 0.0);

  SECTION("reset_step_profile starts the counts again") {
    trainer.reset_step_profile();
    CHECK(trainer.step_profile().steps == 0);
    CHECK(trainer.step_profile().training_rows == 0);
    run_steps(trainer, data, 1);
    CHECK(trainer.step_profile().steps == 1);
    CHECK(trainer.step_profile().training_rows == kBatch);
  }
}

TEST_CASE("With profiling on every part of a step takes time and the parts add up to the total",
          "[profile]") {
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(batch_norm);
  Model model(spec(batch_norm));
  model.initialize(3);
  Trainer trainer(model, settings(/*profile=*/true));
  const shardprop::Dataset data = make_dataset(kBatch, 5);
  run_steps(trainer, data, 1);  // first touch of the workspaces, threads joining the arena
  trainer.reset_step_profile();
  constexpr int kSteps = 5;
  run_steps(trainer, data, kSteps);

  const StepProfile p = trainer.step_profile();
  CAPTURE(p.forward_gemm, p.forward_elementwise, p.backward_gemm, p.backward_elementwise, p.idle,
          p.batch_norm_sync, p.reduction_update, p.exchange, p.total);
  CHECK(p.steps == kSteps);
  CHECK(p.training_rows == kSteps * kBatch);
  CHECK(p.forward_gemm > 0.0);
  CHECK(p.forward_elementwise > 0.0);
  CHECK(p.backward_gemm > 0.0);
  CHECK(p.backward_elementwise > 0.0);
  CHECK(p.idle > 0.0);  // two slots: at least the region's start and join are not shard work
  CHECK(p.reduction_update > 0.0);
  CHECK(p.exchange == 0.0);  // one process
  if (batch_norm) {
    CHECK(p.batch_norm_sync > 0.0);
  } else {
    CHECK(p.batch_norm_sync == 0.0);
  }
  CHECK(p.total > 0.0);
  // The rest of total is bookkeeping: within 10% of it, or 50 µs a step if that is more.
  CHECK(sum_of_parts(p) <= p.total);
  CHECK(p.total - sum_of_parts(p) <= std::max(0.10 * p.total, kSteps * 50e-6));
}

TEST_CASE("Profiling does not change the trained weights", "[profile][determinism]") {
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(batch_norm);
  const shardprop::Dataset data = make_dataset(3 * kBatch + 17, 7);
  std::vector<std::vector<float>> weights;
  for (const bool profile : {false, true}) {
    Model model(spec(batch_norm));
    model.initialize(3);
    Trainer trainer(model, settings(profile));
    trainer.train_epoch(data);
    trainer.train_epoch(data);
    weights.emplace_back(model.parameters().begin(), model.parameters().end());
  }
  REQUIRE(weights[0].size() == weights[1].size());
  CHECK(std::memcmp(weights[0].data(), weights[1].data(), weights[0].size() * sizeof(float)) == 0);
}

TEST_CASE("An epoch trains on each row once and evaluate runs each row once", "[profile]") {
  // rows % batch == 1: batch norm skips the last one-row minibatch.
  const auto [batch_norm, rows, trained] = GENERATE(table<bool, std::int64_t, std::int64_t>({
      {false, 1000, 1000},
      {false, 3 * kBatch + 1, 3 * kBatch + 1},
      {true, 1000, 1000},
      {true, 3 * kBatch + 1, 3 * kBatch},
  }));
  CAPTURE(batch_norm, rows, trained);
  const bool profile = GENERATE(false, true);
  CAPTURE(profile);
  Model model(spec(batch_norm));
  model.initialize(3);
  Trainer trainer(model, settings(profile));
  const shardprop::Dataset data = make_dataset(rows, 11);

  SECTION("train_epoch adds the rows it trained on, and no evaluated rows") {
    trainer.train_epoch(data);
    CHECK(trainer.step_profile().training_rows == trained);
    CHECK(trainer.step_profile().steps == (trained + kBatch - 1) / kBatch);
    CHECK(trainer.step_profile().evaluated_rows == 0);
  }
  SECTION("evaluate adds every row to the evaluated rows, and no training rows") {
    trainer.evaluate(data);
    CHECK(trainer.step_profile().evaluated_rows == rows);
    CHECK(trainer.step_profile().training_rows == 0);
    CHECK(trainer.step_profile().steps == 0);
  }
}
