// Sharded == unsharded: a minibatch split into S shards (each its own forward, backward and
// gradient buffer, reduced in shard order) takes the step one unsharded pass takes, up to float
// rounding; and the ShardPlan that decides the split. Leaves out bitwise reproducibility across
// thread counts (determinism_test).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "train/shard_plan.hpp"

namespace {

using shardprop::Activation;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::TensorInfo;
using shardprop::Trainer;
using shardprop::TrainerSettings;

// Sharding changes only the order of float additions: per-shard sums of rows, then a sum over
// shards, where one shard sums all rows at once (and may use BLAS where small shards use the
// plain loop). Each parameter's update therefore differs by a few float roundings of the
// gradient, far below 1e-6 relative for parameters of size ~0.1..1. A parameter that ends up
// near zero has no relative precision to speak of (its value is the difference of two nearly
// equal floats), so below an absolute floor of 2e-7 — a few float ulps at magnitude 1, and
// about lr·|g|·1e-6 for the updates here — the absolute difference is what is compared.
constexpr double kRelative = 1e-6;
constexpr double kAbsoluteFloor = 2e-7;

float uniform(std::mt19937& rng, float lo, float hi) {
  return lo + (hi - lo) * static_cast<float>(rng() >> 8) * (1.0f / 16777216.0f);
}

// 12 → 32 → tanh → 16 → tanh → 4: with 23 rows the first product (23·32·12) runs through BLAS,
// a 3- or 4-row shard's through the plain loop, so the two paths are compared too.
ModelSpec spec_for(Loss loss) {
  const int hidden[] = {32, 16};
  return ModelSpec::mlp(12, hidden, 4, Activation::tanh, loss);
}

// Weights from initialize() and random biases, so no parameter starts at exactly zero.
Model random_model(Loss loss, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Model model(spec_for(loss));
  model.initialize(seed);
  for (const TensorInfo& t : model.tensors()) {
    if (t.role == shardprop::TensorRole::weight) continue;
    for (std::size_t i = 0; i < t.size; ++i) {
      model.parameters()[t.offset + i] = uniform(rng, -0.5f, 0.5f);
    }
  }
  return model;
}

shardprop::Dataset make_dataset(Loss loss, std::int64_t rows, std::uint32_t seed) {
  std::mt19937 rng(seed);
  shardprop::Dataset data;
  data.rows = rows;
  data.feature_count = 12;
  data.target_width = loss == Loss::xent ? 1 : 4;
  for (std::int64_t i = 0; i < rows * data.feature_count; ++i) {
    data.features.push_back(uniform(rng, -1.5f, 1.5f));
  }
  for (std::int64_t i = 0; i < rows * data.target_width; ++i) {
    switch (loss) {
      case Loss::mse:
        data.targets.push_back(uniform(rng, -1.0f, 1.0f));
        break;
      case Loss::bce:
        data.targets.push_back(uniform(rng, 0.0f, 1.0f) < 0.5f ? 0.0f : 1.0f);
        break;
      case Loss::xent:
        data.targets.push_back(static_cast<float>(rng() % 4));
        break;
    }
  }
  return data;
}

TrainerSettings settings_for(int shards, int threads, int batch_size) {
  TrainerSettings s;
  s.threads = threads;
  s.shards = shards;
  s.batch_size = batch_size;
  s.learning_rate = 0.1f;
  s.weight_decay = 0.01f;
  s.seed = 17;
  return s;
}

// Every parameter of `sharded` equals the one of `reference`, and the step really moved them
// (relative to `initial`), so the comparison is not one of two untouched models.
void check_same_parameters(const Model& sharded, const Model& reference, const Model& initial) {
  int mismatches = 0, moved = 0, total = 0;
  for (const TensorInfo& t : reference.tensors()) {
    for (std::size_t i = t.offset; i < t.offset + t.size; ++i) {
      const double want = reference.parameters()[i];
      const double got = sharded.parameters()[i];
      ++total;
      if (std::fabs(want - initial.parameters()[i]) > 1000 * kAbsoluteFloor) ++moved;
      // Catch2 v2's || keeps references to its operands: they need names of their own.
      const auto relative = Catch::Matchers::WithinRel(want, kRelative);
      const auto absolute = Catch::Matchers::WithinAbs(want, kAbsoluteFloor);
      const auto same = relative || absolute;
      if (!same.match(got)) {
        const std::string& name = t.name;
        const std::size_t element = i - t.offset;
        CAPTURE(name, element);
        CHECK_THAT(got, same);
        if (++mismatches > 5) FAIL("more than 5 parameters differ");
      }
    }
  }
  CAPTURE(total, moved);
  CHECK(mismatches == 0);
  CHECK(moved * 10 >= total * 9);
}

}  // namespace

TEST_CASE(
    "ShardPlan splits rows into contiguous shards in row order whose sizes differ by at "
    "most one",
    "[sharding]") {
  for (int rows = 1; rows <= 40; ++rows) {
    for (int requested = 1; requested <= 12; ++requested) {
      const shardprop::detail::ShardPlan plan(rows, requested);
      CAPTURE(rows, requested);
      REQUIRE(plan.rows == rows);
      REQUIRE(plan.shards == std::min(rows, requested));
      int next = 0, smallest = rows, largest = 0;
      for (int s = 0; s < plan.shards; ++s) {
        CAPTURE(s);
        REQUIRE(plan.begin(s) == next);  // contiguous, in order, starting at row 0
        REQUIRE(plan.size(s) >= 1);
        // The extra rows go to the first shards: sizes never grow along the plan.
        if (s > 0) REQUIRE(plan.size(s) <= plan.size(s - 1));
        smallest = std::min(smallest, plan.size(s));
        largest = std::max(largest, plan.size(s));
        next += plan.size(s);
      }
      REQUIRE(next == rows);  // every row in exactly one shard
      REQUIRE(largest - smallest <= 1);
    }
  }
}

TEST_CASE("One step on a 23-row batch gives the same weights with 1, 2, 3 or 7 shards",
          "[sharding]") {
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  const int shards = GENERATE(1, 2, 3, 7);
  const int threads = GENERATE(1, 2);  // sequential shards, and shards as parallel tasks
  CAPTURE(to_string(loss), shards, threads);
  const int rows = 23;  // not a multiple of 2, 3 or 7
  const shardprop::Dataset data = make_dataset(loss, rows, 3);
  const Model initial = random_model(loss, 5);

  Model reference = initial;
  Trainer unsharded(reference, settings_for(1, 1, rows));
  const double reference_loss = unsharded.step(data.features, data.targets);

  Model model = initial;
  Trainer trainer(model, settings_for(shards, threads, rows));
  REQUIRE(trainer.shard_count() == shards);
  const double loss_value = trainer.step(data.features, data.targets);

  CHECK_THAT(loss_value, Catch::Matchers::WithinRel(reference_loss, 1e-6));
  check_same_parameters(model, reference, initial);
}

TEST_CASE("A minibatch with fewer rows than shards steps like an unsharded one", "[sharding]") {
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  const int rows = GENERATE(1, 4, 6);  // the trainer has 7 shards
  CAPTURE(to_string(loss), rows);
  const shardprop::Dataset data = make_dataset(loss, rows, 9);
  const Model initial = random_model(loss, 10);

  Model reference = initial;
  Trainer unsharded(reference, settings_for(1, 1, 23));
  const double reference_loss = unsharded.step(data.features, data.targets);

  Model model = initial;
  Trainer trainer(model, settings_for(7, 2, 23));
  const double loss_value = trainer.step(data.features, data.targets);

  CHECK_THAT(loss_value, Catch::Matchers::WithinRel(reference_loss, 1e-6));
  check_same_parameters(model, reference, initial);
}

TEST_CASE("An epoch whose last minibatch has fewer rows than shards matches the unsharded epoch",
          "[sharding]") {
  // 27 rows in batches of 23: a full batch over 7 shards, then 4 rows over 4 of the 7 shards.
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  CAPTURE(to_string(loss));
  const shardprop::Dataset data = make_dataset(loss, 27, 12);
  const Model initial = random_model(loss, 13);

  Model reference = initial;
  Trainer unsharded(reference, settings_for(1, 1, 23));
  const shardprop::Metrics reference_metrics = unsharded.train_epoch(data);

  Model model = initial;
  Trainer trainer(model, settings_for(7, 2, 23));
  const shardprop::Metrics metrics = trainer.train_epoch(data);

  CHECK(metrics.rows == 27);
  CHECK_THAT(metrics.loss, Catch::Matchers::WithinRel(reference_metrics.loss, 1e-6));
  // Two steps: the first step's rounding differences carry into the second's gradient, but
  // they stay at the level of a few ulps.
  check_same_parameters(model, reference, initial);
}
