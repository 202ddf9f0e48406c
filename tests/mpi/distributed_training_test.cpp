// Training across ranks equals training in one process, bitwise: every rank also trains a
// single-process trainer on the whole dataset and compares weights, running statistics,
// counters and optimizer state after each epoch. Runs under mpirun with any rank count.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "chunked_dataset.hpp"
#include "shardprop/communicator.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "train/trainer_access.hpp"

namespace {

using shardprop::Communicator;
using shardprop::Dataset;
using shardprop::DatasetPart;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::Trainer;
using shardprop::TrainerSettings;

constexpr int kInputs = 12;
constexpr int kClasses = 4;

Dataset make_dataset(std::int64_t rows) {
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  Dataset data;
  data.rows = rows;
  data.feature_count = kInputs;
  data.target_width = 1;
  for (std::int64_t r = 0; r < rows; ++r) {
    const int label = static_cast<int>(rng() % kClasses);
    for (int j = 0; j < kInputs; ++j) {
      data.features.push_back(noise(rng) + (j % kClasses == label ? 1.5f : 0.0f));
    }
    data.targets.push_back(static_cast<float>(label));
  }
  return data;
}

// Rank r's rows [begin, end) of the whole, split unevenly on purpose (rank r gets a share
// proportional to r + 1), as byte ranges of a CSV file would be.
std::pair<std::int64_t, std::int64_t> range_of(std::int64_t rows, const Communicator& comm) {
  const std::int64_t ranks = comm.size();
  auto start = [&](std::int64_t r) { return rows * (r * (r + 1) / 2) / (ranks * (ranks + 1) / 2); };
  return {start(comm.rank()), start(comm.rank() + 1)};
}

DatasetPart part_of(const Dataset& whole, const Communicator& comm) {
  const auto [begin, end] = range_of(whole.rows, comm);
  DatasetPart part;
  part.first_row = begin;
  part.total_rows = whole.rows;
  part.rows = whole;
  part.rows.rows = end - begin;
  part.rows.features.assign(whole.features.begin() + begin * kInputs,
                            whole.features.begin() + end * kInputs);
  part.rows.targets.assign(whole.targets.begin() + begin, whole.targets.begin() + end);
  return part;
}

ModelSpec spec_of(const char* layers) {
  ModelSpec spec;
  spec.inputs = kInputs;
  spec.layers = shardprop::parse_layers(layers);
  spec.loss = shardprop::Loss::xent;
  return spec;
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void require_same_state(Model& a, Trainer& ta, Model& b, Trainer& tb) {
  REQUIRE(same_bits(a.parameters(), b.parameters()));
  REQUIRE(std::vector<std::int64_t>(a.counters().begin(), a.counters().end()) ==
          std::vector<std::int64_t>(b.counters().begin(), b.counters().end()));
  const auto slots = shardprop::detail::TrainerAccess::optimizer_state_names(ta).size();
  for (std::size_t slot = 0; slot < slots; ++slot) {
    REQUIRE(
        same_bits(shardprop::detail::TrainerAccess::optimizer_state(ta, static_cast<int>(slot)),
                  shardprop::detail::TrainerAccess::optimizer_state(tb, static_cast<int>(slot))));
  }
  REQUIRE(ta.steps_completed() == tb.steps_completed());
  REQUIRE(ta.last_gradient_norm() == tb.last_gradient_norm());
}

struct Case {
  const char* name;
  const char* layers;
  TrainerSettings settings;
};

TrainerSettings base_settings(int shards, int batch) {
  TrainerSettings s;
  s.threads = 1;
  s.shards = shards;
  s.batch_size = batch;
  s.learning_rate = 0.05f;
  s.seed = 11;
  return s;
}

std::vector<Case> cases() {
  std::vector<Case> all;
  all.push_back({"sgd", "dense(24) relu dense(16) relu dense(4)", base_settings(4, 32)});
  TrainerSettings momentum = base_settings(5, 30);
  momentum.momentum = 0.9f;
  momentum.nesterov = true;
  momentum.weight_decay = 1e-3f;
  all.push_back({"nesterov momentum, uneven shards", "dense(24) tanh dense(4)", momentum});
  TrainerSettings adam = base_settings(4, 32);
  adam.optimizer = shardprop::Optimizer::adam;
  adam.learning_rate = 0.01f;
  adam.clip_grad_norm = 0.5f;
  all.push_back({"adam with clipping", "dense(24) relu dense(16) relu dense(4)", adam});
  all.push_back(
      {"dropout", "dense(24) relu dropout(0.3) dense(16) relu dense(4)", base_settings(4, 32)});
  all.push_back(
      {"batch norm", "dense(24) bn relu dense(16) bn relu dense(4)", base_settings(6, 48)});
  return all;
}

}  // namespace

TEST_CASE("training across ranks is bitwise training in one process", "[mpi]") {
  const Communicator world = Communicator::mpi_world();
  const Dataset whole = make_dataset(203);  // the last minibatch is partial
  const DatasetPart part = part_of(whole, world);
  for (const Case& c : cases()) {
    SECTION(c.name) {
      const ModelSpec spec = spec_of(c.layers);
      Model alone(spec), together(spec);
      alone.initialize(3);
      together.initialize(3);
      Trainer single(alone, c.settings);
      Trainer distributed(together, c.settings, world);
      REQUIRE(distributed.shard_count() == single.shard_count());
      for (int epoch = 0; epoch < 3; ++epoch) {
        const shardprop::Metrics a = single.train_epoch(whole);
        const shardprop::Metrics b = distributed.train_epoch(part);
        CHECK(a.loss == b.loss);
        CHECK(a.accuracy == b.accuracy);
        require_same_state(alone, single, together, distributed);
      }
      SECTION("and a dataset every rank holds whole trains the same") {
        Model replicated(spec);
        replicated.initialize(3);
        Trainer on_copies(replicated, c.settings, world);
        for (int epoch = 0; epoch < 3; ++epoch) on_copies.train_epoch(whole);
        require_same_state(alone, single, replicated, on_copies);
      }
    }
  }
}

TEST_CASE("a rank count above the shard count is refused, and automatic shards rise to it",
          "[mpi]") {
  const Communicator world = Communicator::mpi_world();
  Model model(spec_of("dense(8) relu dense(4)"));
  TrainerSettings s = base_settings(world.size() - 1, 64);
  if (world.size() > 1) {
    CHECK_THROWS_WITH(Trainer(model, s, world),
                      Catch::Contains("every rank needs at least one shard"));
  }
  s.shards = 0;
  const Trainer automatic(model, s, world);
  CHECK(automatic.shard_count() >= world.size());
}

TEST_CASE("bad data on one rank fails the epoch on every rank with that rank's message", "[mpi]") {
  const Communicator world = Communicator::mpi_world();
  Dataset whole = make_dataset(64);
  DatasetPart part = part_of(whole, world);
  const int bad_rank = world.size() - 1;
  if (world.rank() == bad_rank) part.rows.targets.back() = 9.0f;  // not a class of 4
  Model model(spec_of("dense(8) relu dense(4)"));
  model.initialize(1);
  Trainer trainer(model, base_settings(world.size(), 16), world);
  const std::string prefix = world.size() > 1 ? "rank " + std::to_string(bad_rank) + ": " : "";
  CHECK_THROWS_AS(trainer.train_epoch(part), shardprop::CollectiveError);
  CHECK_THROWS_WITH(trainer.train_epoch(part), Catch::StartsWith(prefix));
  // Every rank caught it and the communicator still works: a good epoch follows.
  if (world.rank() == bad_rank) part.rows.targets.back() = 1.0f;
  CHECK_NOTHROW(trainer.train_epoch(part));
}

TEST_CASE("a stream spread across ranks trains as one process streaming the whole", "[mpi]") {
  const Communicator world = Communicator::mpi_world();
  const Dataset whole = make_dataset(203);
  const auto [begin, end] = range_of(whole.rows, world);
  // A buffer of 50 rows (rows leave as others arrive, then the rest drain), or no shuffle.
  const std::size_t buffer = GENERATE(std::size_t{50} * (kInputs + 1) * sizeof(float), 0);
  TrainerSettings settings = cases().back().settings;  // batch norm: statistics across ranks
  settings.shuffle = buffer > 0;
  settings.shuffle_buffer_bytes = buffer;
  const ModelSpec spec = spec_of(cases().back().layers);
  Model alone(spec), together(spec);
  alone.initialize(5);
  together.initialize(5);
  Trainer single(alone, settings);
  Trainer distributed(together, settings, world);
  shardprop::test::ChunkedDataset whole_stream(whole, 17);
  shardprop::test::ChunkedDataset part_stream(whole, 13, begin, end);
  const shardprop::StreamPart part{&part_stream, begin, end - begin, whole.rows};
  for (int epoch = 0; epoch < 2; ++epoch) {
    const shardprop::Metrics a = single.train_epoch(whole_stream);
    const shardprop::Metrics b = distributed.train_epoch(part);
    CHECK(a.loss == b.loss);
    CHECK(a.accuracy == b.accuracy);
    require_same_state(alone, single, together, distributed);
  }
  const shardprop::Metrics a = single.evaluate(whole_stream);
  const shardprop::Metrics b = distributed.evaluate(part);
  CHECK(a.loss == b.loss);
  CHECK(a.rows == b.rows);
}

TEST_CASE("evaluating a part gives the whole's metrics, bitwise", "[mpi]") {
  const Communicator world = Communicator::mpi_world();
  const Dataset whole = make_dataset(1000);
  const DatasetPart part = part_of(whole, world);
  const ModelSpec spec = spec_of("dense(24) relu dense(4)");
  Model model(spec);
  model.initialize(2);
  const Trainer single(model, base_settings(4, 32));
  const Trainer distributed(model, base_settings(4, 32), world);
  const shardprop::Metrics a = single.evaluate(whole);
  const shardprop::Metrics b = distributed.evaluate(part);
  CHECK(a.loss == b.loss);
  CHECK(a.accuracy == b.accuracy);
  CHECK(a.rows == b.rows);
}

TEST_CASE("a stop asked on one rank stops every rank at the same step, and the epoch continues",
          "[mpi][stop]") {
  const Communicator world = Communicator::mpi_world();
  const Dataset whole = make_dataset(203);
  const auto [begin, end] = range_of(whole.rows, world);
  const bool streamed = GENERATE(false, true);
  CAPTURE(streamed);
  TrainerSettings settings = cases().back().settings;  // batch norm: statistics across ranks
  settings.shuffle_buffer_bytes = std::size_t{50} * (kInputs + 1) * sizeof(float);
  const ModelSpec spec = spec_of(cases().back().layers);
  Model alone(spec), together(spec);
  alone.initialize(5);
  together.initialize(5);
  Trainer single(alone, settings);
  Trainer distributed(together, settings, world);
  const DatasetPart part = part_of(whole, world);
  shardprop::test::ChunkedDataset part_stream(whole, 13, begin, end);
  const shardprop::StreamPart stream_part{&part_stream, begin, end - begin, whole.rows};
  auto train = [&] {
    return streamed ? distributed.train_epoch(stream_part) : distributed.train_epoch(part);
  };

  // Only the last rank is asked, after its 3rd step of the second epoch; every rank reads
  // the agreed request in the 4th and stops after it.
  shardprop::StopFlag flag{0};
  distributed.set_stop_flag(&flag);
  int steps = 0;
  distributed.set_step_callback([&] {
    if (++steps == 4 + 3 && world.rank() == world.size() - 1) flag.store(10);
  });
  shardprop::test::ChunkedDataset whole_stream(whole, 17);
  auto train_alone = [&] {
    return streamed ? single.train_epoch(whole_stream) : single.train_epoch(whole);
  };
  const shardprop::Metrics first_alone = train_alone();
  const shardprop::Metrics first = train();
  CHECK(first.loss == first_alone.loss);
  const shardprop::Metrics second_alone = train_alone();
  train();
  CHECK(distributed.stop_request() == 10);
  CHECK(distributed.epochs_completed() == 1);
  CHECK(distributed.epoch_position().step == 4);
  flag.store(0);
  const shardprop::Metrics second = train();
  CHECK(distributed.epochs_completed() == 2);
  CHECK(second.loss == second_alone.loss);
  CHECK(second.accuracy == second_alone.accuracy);
  require_same_state(alone, single, together, distributed);
}
