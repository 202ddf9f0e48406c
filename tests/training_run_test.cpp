// train_run as a library caller uses it: restart seeds, early stopping, periodic checkpoints
// named and pruned (hidden temporary files left alone), the best restart kept, and a run
// resumed from any of its checkpoints ending bitwise equal to the uninterrupted one.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/training_run.hpp"
#include "test_util.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;

namespace {

// Two noisy blobs in 2-D, 3 classes: learnable, but not perfectly, so losses differ by seed.
Dataset blobs(int rows, unsigned seed) {
  Dataset d;
  d.rows = rows;
  d.feature_count = 2;
  d.target_width = 1;
  d.class_names = {"a", "b", "c"};
  std::mt19937_64 bits(seed);
  std::normal_distribution<float> noise(0.0f, 0.8f);
  for (int i = 0; i < rows; ++i) {
    const int label = i % 3;
    d.features.push_back(static_cast<float>(label) + noise(bits));
    d.features.push_back(static_cast<float>(label % 2) + noise(bits));
    d.targets.push_back(static_cast<float>(label));
  }
  return d;
}

struct Fixture {
  test::TempDir dir;
  Dataset train = blobs(120, 1);
  Dataset validation = blobs(60, 2);
  RunSettings settings;
  RunData data;
  RunMetadata metadata;

  Fixture() {
    settings.spec = ModelSpec::mlp(2, std::vector<int>{8}, 3, Activation::tanh, Loss::xent);
    settings.trainer.batch_size = 16;
    settings.trainer.learning_rate = 0.1f;
    settings.trainer.optimizer = Optimizer::adam;
    settings.trainer.learning_rate = 0.01f;
    settings.trainer.seed = 7;
    settings.epochs = 4;
    data.train_epoch = [this](Trainer& t) { return t.train_epoch(train); };
    data.evaluate = [this](const Trainer& t) { return t.evaluate(validation); };
    metadata.data_name = "blobs";
    metadata.feature_names = {"x", "y"};
    metadata.target_names = {"label"};
    metadata.class_names = train.class_names;
  }
};

std::vector<char> tensor_bytes(const std::filesystem::path& path) {
  const Model model = load_model(path);
  const auto* begin = reinterpret_cast<const char*>(model.parameters().data());
  return {begin, begin + model.parameters().size_bytes()};
}

}  // namespace

TEST_CASE("restart 0 uses the run's seed and the others a counter-based hash of it",
          "[training_run]") {
  CHECK(restart_seed(42, 0) == 42);
  // SplitMix64's finaliser of seed + r·φ: the seeds files written so far record.
  CHECK(restart_seed(1, 1) == 0x910a2dec89025cc1ULL);
  CHECK(restart_seed(1, 2) != restart_seed(1, 1));
  CHECK(restart_seed(2, 1) != restart_seed(1, 1));
}

TEST_CASE("periodic checkpoints sort by age and pruning keeps the newest of this run only",
          "[training_run]") {
  test::TempDir dir;
  const PeriodicCheckpoints one = PeriodicCheckpoints::next_to(dir / "m.st", {}, false, 2);
  CHECK(one.path(0, 7) == dir / "m.epoch-000007.safetensors");
  const PeriodicCheckpoints several = PeriodicCheckpoints::next_to("out/m.st", dir / "c", true, 2);
  CHECK(several.path(3, 12) == dir / "c" / "m.r003.epoch-000012.safetensors");
  CHECK(PeriodicCheckpoints::next_to({}, {}, false, 1).path(0, 1) ==
        std::filesystem::path(".") / "checkpoint.epoch-000001.safetensors");

  for (int epoch = 1; epoch <= 4; ++epoch) test::write_text(one.path(0, epoch), "x");
  const std::vector<std::string> others{".m.epoch-000009.safetensors.tmp.Ab12Cd", "m.st",
                                        "mm.epoch-000001.safetensors", "m.epoch-1.safetensors"};
  for (const std::string& name : others) test::write_text(dir / name, "x");
  one.prune();
  std::vector<std::string> expected = others;
  expected.push_back("m.epoch-000003.safetensors");
  expected.push_back("m.epoch-000004.safetensors");
  std::sort(expected.begin(), expected.end());
  CHECK(test::directory_entries(dir.path()) == expected);
}

TEST_CASE("a run keeps the restart with the lowest final loss and marks the file done",
          "[training_run]") {
  Fixture f;
  f.settings.restarts = 3;
  f.settings.out = f.dir / "best.st";
  std::vector<double> final_losses(3);
  int kept = -2;
  RunObserver observer;
  observer.restart_finished = [&](int r, double loss, bool) { final_losses.at(r) = loss; };
  observer.result_written = [&](const std::filesystem::path&, int chosen) { kept = chosen; };
  const RunState state = train_run(f.settings, f.metadata, f.data, observer);
  const int best = static_cast<int>(std::min_element(final_losses.begin(), final_losses.end()) -
                                    final_losses.begin());
  CHECK(kept == best);
  CHECK(state.restarts_done);
  CHECK(state.best_restart == best);
  const RunCheckpoint file(f.settings.out);
  CHECK(file.metadata().run.restarts_done);
  CHECK(file.metadata().run.best_restart == best);
  CHECK(file.metadata().seed == restart_seed(7, best));
  CHECK(file.metadata().epochs == 4);
  CHECK(file.metadata().data_name == "blobs");
}

TEST_CASE("early stopping ends a restart after PATIENCE epochs without a lower loss",
          "[training_run]") {
  Fixture f;
  f.settings.epochs = 30;
  f.settings.early_stopping = 2;
  f.settings.trainer.learning_rate = 0.5f;  // overshoots, so the loss stops falling
  f.settings.trainer.optimizer = Optimizer::sgd;
  std::vector<EpochResult> epochs;
  int stopped_after = 0;
  RunObserver observer;
  observer.epoch_finished = [&](const EpochResult& e) { epochs.push_back(e); };
  observer.stopped_early = [&](int epoch, const RunState&) { stopped_after = epoch; };
  const RunState state = train_run(f.settings, f.metadata, f.data, observer);
  REQUIRE(stopped_after > 0);
  CHECK(stopped_after == static_cast<int>(epochs.size()));
  CHECK(state.bad_epochs == 2);
  CHECK(state.best_epoch == stopped_after - 2);
  CHECK_FALSE(epochs.back().improved);
}

TEST_CASE("a run resumed from a periodic checkpoint ends bitwise equal to the uninterrupted one",
          "[training_run]") {
  Fixture f;
  f.settings.restarts = GENERATE(1, 2);
  CAPTURE(f.settings.restarts);
  f.settings.out = f.dir / "whole.st";
  f.settings.checkpoint_every = 1;
  f.settings.keep = 20;
  std::vector<std::filesystem::path> written;
  RunObserver observer;
  observer.checkpoint_written = [&](const std::filesystem::path& p) { written.push_back(p); };
  train_run(f.settings, f.metadata, f.data, observer);
  REQUIRE(written.size() == static_cast<std::size_t>(3 * f.settings.restarts));

  for (const std::filesystem::path& from : written) {
    CAPTURE(from);
    RunCheckpoint checkpoint(from);
    RunSettings resumed = f.settings;
    resumed.out = f.dir / "resumed.st";
    resumed.checkpoint_every = 0;
    bool said_resumed = false;
    RunObserver told;
    told.restart_started = [&](int, const Trainer&, bool resumed_here) {
      said_resumed = said_resumed || resumed_here;
    };
    train_run(resumed, checkpoint.metadata(), f.data, told, &checkpoint);
    CHECK(said_resumed);
    CHECK(tensor_bytes(resumed.out) == tensor_bytes(f.settings.out));
  }

  SECTION("a checkpoint of another model is refused, naming the file") {
    RunCheckpoint checkpoint(written.front());
    RunSettings other = f.settings;
    other.spec = ModelSpec::mlp(2, std::vector<int>{9}, 3, Activation::tanh, Loss::xent);
    CHECK_THROWS_WITH(train_run(other, checkpoint.metadata(), f.data, {}, &checkpoint),
                      Contains(written.front().string()) && Contains("dense(9)"));
  }
}

TEST_CASE("without an evaluation the epochs' running metrics stand in, at no extra pass",
          "[training_run]") {
  Fixture f;
  f.data.evaluate = {};
  int train_passes = 0;
  f.data.train_epoch = [&](Trainer& t) {
    ++train_passes;
    return t.train_epoch(f.train);
  };
  std::vector<EpochResult> epochs;
  RunObserver observer;
  observer.epoch_finished = [&](const EpochResult& e) { epochs.push_back(e); };
  const RunState state = train_run(f.settings, f.metadata, f.data, observer);
  REQUIRE(epochs.size() == 4);
  CHECK(train_passes == 4);
  for (const EpochResult& e : epochs) {
    CHECK(e.evaluation.loss == e.train.loss);
    CHECK(e.evaluation.accuracy == e.train.accuracy);
    CHECK(e.evaluation.rows == e.train.rows);
  }
  // The run's best loss is the lowest running training loss.
  double lowest = epochs.front().train.loss;
  for (const EpochResult& e : epochs) lowest = std::min(lowest, e.train.loss);
  CHECK(state.best_loss == lowest);
}
