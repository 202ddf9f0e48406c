// Stopping a run on request and resuming inside an epoch: a stop at any step leaves a checkpoint
// that resumes to the weights and epoch metrics of the uninterrupted run, bitwise, for SGD with
// momentum, Adam, dropout and batch norm, in memory and streamed; so do periodic checkpoints
// taken every N steps. The position is recorded in the run metadata and validated when read.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "chunked_dataset.hpp"
#include "noisy_blobs.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/training_run.hpp"
#include "test_util.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;

namespace {

using test::noisy_blobs;

struct Case {
  const char* name;
  Optimizer optimizer;
  float momentum;
  float dropout;
  bool batch_norm;
};

// 101 rows in minibatches of 8: 13 steps an epoch, the last of 5 rows (with batch norm too).
constexpr int kRows = 101;
constexpr int kStepsPerEpoch = 13;
constexpr int kEpochs = 3;

struct StopFixture {
  test::TempDir dir;
  Dataset train = noisy_blobs(kRows, 1);
  test::ChunkedDataset stream{train, 17};
  RunSettings settings;
  RunMetadata metadata;
  bool streamed = false;
  // Epoch results told by the last run, by epoch.
  std::vector<EpochResult> epochs;

  StopFixture(const Case& c, bool streamed_data) : streamed(streamed_data) {
    settings.spec = ModelSpec::mlp(2, std::vector<int>{12, 12}, 3, Activation::tanh, Loss::xent,
                                   c.batch_norm, c.dropout);
    settings.trainer.batch_size = 8;
    settings.trainer.shards = 3;
    settings.trainer.threads = 2;
    settings.trainer.optimizer = c.optimizer;
    settings.trainer.momentum = c.momentum;
    settings.trainer.learning_rate = c.optimizer == Optimizer::adam ? 0.01f : 0.05f;
    settings.trainer.seed = 11;
    // A buffer smaller than the data, so the streamed shuffle holds state across steps.
    settings.trainer.shuffle_buffer_bytes = 40 * 3 * sizeof(float);
    settings.epochs = kEpochs;
    metadata.feature_names = {"x", "y"};
    metadata.target_names = {"label"};
    metadata.class_names = train.class_names;
  }

  // The run's data; `after_step` is told after every step of an epoch, with the run's count.
  RunData data(const std::function<void(int step)>& after_step = {}) {
    RunData d;
    d.train_epoch = [this, after_step](Trainer& t) {
      const ProgressCallback progress = [&](std::int64_t, std::int64_t) {
        if (after_step) after_step(++steps_told_);
      };
      return streamed ? t.train_epoch(stream, progress) : t.train_epoch(train, progress);
    };
    return d;
  }

  RunObserver observer() {
    RunObserver o;
    o.epoch_finished = [this](const EpochResult& e) { epochs.push_back(e); };
    return o;
  }

  RunState run(const RunSettings& s, const RunData& d, RunCheckpoint* resume = nullptr) {
    epochs.clear();
    return train_run(s, resume ? resume->metadata() : metadata, d, observer(), resume);
  }

  int steps_told_ = 0;
};

std::vector<char> tensor_bytes(const std::filesystem::path& path) {
  const Model model = load_model(path);
  const auto* begin = reinterpret_cast<const char*>(model.parameters().data());
  return {begin, begin + model.parameters().size_bytes()};
}

// Metrics compared bit for bit.
bool same_bits(const Metrics& a, const Metrics& b) {
  return std::memcmp(&a.loss, &b.loss, sizeof(double)) == 0 &&
         std::memcmp(&a.accuracy, &b.accuracy, sizeof(double)) == 0 &&
         std::memcmp(&a.rmse, &b.rmse, sizeof(double)) == 0 && a.rows == b.rows;
}

const Case kCases[] = {
    Case{"sgd momentum", Optimizer::sgd, 0.9f, 0.0f, false},
    Case{"adam", Optimizer::adam, 0.0f, 0.0f, false},
    Case{"adam dropout", Optimizer::adam, 0.0f, 0.25f, false},
    Case{"sgd momentum batch norm", Optimizer::sgd, 0.9f, 0.0f, true},
    Case{"adam batch norm dropout", Optimizer::adam, 0.0f, 0.2f, true},
};

}  // namespace

TEST_CASE("a run stopped at any step resumes to the uninterrupted weights and metrics bitwise",
          "[stop][resume]") {
  const Case c = kCases[GENERATE(range(0, 5))];
  const bool streamed = GENERATE(false, true);
  CAPTURE(c.name, streamed);

  StopFixture f(c, streamed);
  f.settings.out = f.dir / "whole.st";
  f.run(f.settings, f.data());
  const std::vector<EpochResult> whole = f.epochs;
  REQUIRE(whole.size() == kEpochs);

  // Steps chosen from a seeded generator over the whole run (but the last two, after which the
  // run ends anyway), inside epochs and at their ends.
  std::mt19937_64 bits(std::strlen(c.name) * 2 + (streamed ? 1 : 0));
  std::vector<int> stops{1, kStepsPerEpoch - 1, kStepsPerEpoch, kStepsPerEpoch + 1};
  for (int i = 0; i < 3; ++i) {
    stops.push_back(static_cast<int>(bits() % (kEpochs * kStepsPerEpoch - 2)) + 1);
  }
  for (const int stop_step : stops) {
    CAPTURE(stop_step);
    StopFixture g(c, streamed);
    StopFlag flag{0};
    RunSettings stopping = g.settings;
    stopping.out = g.dir / "stopped.st";
    stopping.stop = &flag;
    RunStop told;
    RunObserver observer = g.observer();
    observer.stopped = [&](const RunStop& s) { told = s; };
    const RunState state = train_run(stopping, g.metadata, g.data([&](int step) {
      if (step == stop_step) flag.store(15);
    }),
                                     observer);
    REQUIRE(state.stop_request == 15);
    CHECK(told.request == 15);
    CHECK(told.checkpoint == stopping.out);
    // The flag, set after step k, is read in step k + 1, after which the run stops; but an
    // epoch's last step ends its epoch, and a flag set after it stops the run at that boundary.
    const int expected = stop_step % kStepsPerEpoch == 0 ? stop_step : stop_step + 1;
    CHECK(told.epochs * kStepsPerEpoch + told.step == expected);
    const std::vector<EpochResult> before = g.epochs;

    RunCheckpoint checkpoint(stopping.out);
    CHECK(checkpoint.metadata().epochs == told.epochs);
    CHECK(checkpoint.metadata().position.step == told.step);
    const std::int64_t rows_done = checkpoint.metadata().position.rows;
    RunSettings resumed = g.settings;
    resumed.out = g.dir / "resumed.st";
    g.run(resumed, g.data(), &checkpoint);
    CHECK(tensor_bytes(resumed.out) == tensor_bytes(f.settings.out));
    // The epoch the stop cut in two reports the metrics of the uninterrupted one.
    REQUIRE(before.size() + g.epochs.size() == whole.size());
    for (std::size_t i = 0; i < g.epochs.size(); ++i) {
      const EpochResult& e = g.epochs[i];
      CAPTURE(e.epoch);
      CHECK(same_bits(e.train, whole[before.size() + i].train));
      // Its speed counts only the rows trained after the resume.
      CHECK(e.rows_trained == e.train.rows - (i == 0 ? rows_done : 0));
    }
  }
}

TEST_CASE("a trainer stopped inside an epoch continues it on the next call", "[stop][resume]") {
  const Case c = kCases[GENERATE(range(0, 5))];
  CAPTURE(c.name);
  const Dataset train = noisy_blobs(kRows, 3);
  StopFixture f(c, false);
  Model whole_model(f.settings.spec);
  whole_model.initialize(5);
  Model stopped_model = whole_model;
  Trainer whole(whole_model, f.settings.trainer);
  Trainer stopped(stopped_model, f.settings.trainer);
  StopFlag flag{0};
  stopped.set_stop_flag(&flag);
  int steps = 0;
  stopped.set_step_callback([&] {
    if (++steps == 5) flag.store(1);
  });

  const Metrics expected = whole.train_epoch(train);
  const Metrics first = stopped.train_epoch(train);
  CHECK(stopped.epochs_completed() == 0);
  CHECK(stopped.stop_request() == 1);
  // Set after step 5, the flag is read in step 6 (with its gather of metric sums).
  CHECK(stopped.epoch_position().step == 6);
  CHECK(first.rows == 6 * 8);
  flag.store(0);
  const Metrics rest = stopped.train_epoch(train);
  CHECK(stopped.epochs_completed() == 1);
  CHECK(stopped.epoch_position().step == 0);
  CHECK(same_bits(rest, expected));
  CHECK(stopped.steps_completed() == whole.steps_completed());
  CHECK(std::memcmp(stopped_model.parameters().data(), whole_model.parameters().data(),
                    whole_model.parameters().size_bytes()) == 0);
}

TEST_CASE("every checkpoint taken every N steps resumes to the uninterrupted weights",
          "[stop][resume][checkpoint]") {
  const bool streamed = GENERATE(false, true);
  CAPTURE(streamed);
  const Case c{"adam batch norm dropout", Optimizer::adam, 0.0f, 0.2f, true};
  StopFixture f(c, streamed);
  f.settings.out = f.dir / "m.st";
  f.settings.checkpoint_every_steps = 5;
  f.settings.keep = 100;
  std::vector<std::filesystem::path> written;
  RunObserver observer = f.observer();
  observer.checkpoint_written = [&](const std::filesystem::path& p) { written.push_back(p); };
  train_run(f.settings, f.metadata, f.data(), observer);
  // 39 steps: every 5th, inside epochs or at the end of the first two.
  REQUIRE(written.size() == 7);
  CHECK(written[0].filename() == "m.epoch-000000.step-0000000005.safetensors");
  CHECK(written[2].filename() == "m.epoch-000001.step-0000000002.safetensors");

  for (const std::filesystem::path& file : written) {
    CAPTURE(file);
    StopFixture g(c, streamed);
    RunCheckpoint checkpoint(file);
    RunSettings resumed = g.settings;
    resumed.out = g.dir / "resumed.st";
    g.run(resumed, g.data(), &checkpoint);
    CHECK(tensor_bytes(resumed.out) == tensor_bytes(f.settings.out));
  }
}

TEST_CASE("a stop between epochs of a run of several restarts keeps --out's best restart",
          "[stop][resume]") {
  const Case c{"adam", Optimizer::adam, 0.0f, 0.0f, false};
  // The uninterrupted run, evaluating the training data after every epoch.
  StopFixture f(c, false);
  f.settings.restarts = 2;
  f.settings.out = f.dir / "whole.st";
  RunData whole = f.data();
  whole.evaluate = [&](const Trainer& t) { return t.evaluate(f.train); };
  train_run(f.settings, f.metadata, whole);

  StopFixture g(c, false);
  StopFlag flag{0};
  RunSettings stopping = g.settings;
  stopping.restarts = 2;
  stopping.out = g.dir / "m.st";
  stopping.stop = &flag;
  // Asked while the second restart's first epoch is evaluated: the run stops at that boundary.
  RunData data = g.data();
  int evaluations = 0;
  data.evaluate = [&](const Trainer& t) {
    if (++evaluations == kEpochs + 1) flag.store(2);
    return t.evaluate(g.train);
  };
  RunStop told;
  RunObserver observer;
  observer.stopped = [&](const RunStop& s) { told = s; };
  const RunState state = train_run(stopping, g.metadata, data, observer);
  CHECK(state.stop_request == 2);
  CHECK(told.restart == 1);
  CHECK(told.epochs == 1);
  CHECK(told.step == 0);
  CHECK(told.checkpoint == g.dir / "m.r001.epoch-000001.safetensors");
  // The result file still holds the first restart, the best finished one.
  CHECK(RunCheckpoint(stopping.out).metadata().run.weights_restart == 0);

  RunCheckpoint checkpoint(told.checkpoint);
  RunSettings resumed = stopping;
  resumed.stop = nullptr;
  data.evaluate = [&](const Trainer& t) { return t.evaluate(g.train); };
  train_run(resumed, checkpoint.metadata(), data, {}, &checkpoint);
  CHECK(tensor_bytes(resumed.out) == tensor_bytes(f.settings.out));
}

TEST_CASE("the epoch position is recorded only inside an epoch and validated when read",
          "[stop][run_metadata]") {
  const Case c{"sgd momentum", Optimizer::sgd, 0.9f, 0.0f, false};
  StopFixture f(c, false);
  Model model(f.settings.spec);
  model.initialize(1);
  Trainer trainer(model, f.settings.trainer);

  RunMetadata m = f.metadata;
  CHECK_FALSE(run_metadata_entries(m).contains("shardprop.epoch_position"));
  m.position.step = 4;
  m.position.rows = 32;
  m.position.sums = {1.0 / 3.0, 0.1, 17, 32, 2.5e-17, 96};
  const auto entries = run_metadata_entries(m);
  REQUIRE(entries.contains("shardprop.epoch_position"));

  // Through a file: the sums come back bit for bit.
  const std::filesystem::path file = f.dir / "p.st";
  save_checkpoint(model, trainer, file, entries);
  const RunCheckpoint read(file);
  CHECK(read.metadata().position.step == 4);
  CHECK(read.metadata().position.rows == 32);
  CHECK(std::memcmp(read.metadata().position.sums.data(), m.position.sums.data(),
                    sizeof m.position.sums) == 0);

  for (const auto& [text, problem] :
       {std::pair{R"({"step":-1,"rows":0,"sums":[0,0,0,0,0,0]})", "'step' is missing"},
        std::pair{R"({"step":1,"rows":8,"sums":[0,0]})", "'sums' is missing or not 6"},
        std::pair{R"({"step":1,"rows":8})", "'sums' is missing"},
        std::pair{R"([1,2])", "'step' is missing"}}) {
    auto bad = entries;
    bad["shardprop.epoch_position"] = text;
    save_checkpoint(model, trainer, file, bad);
    CHECK_THROWS_WITH(RunCheckpoint(file),
                      Contains("metadata 'shardprop.epoch_position'") && Contains(problem));
  }
}

TEST_CASE("a run keeping its best epoch, stopped inside a later one, resumes to the same --out",
          "[stop][resume][early-stopping]") {
  const Case c = kCases[0];
  const bool streamed = GENERATE(false, true);
  CAPTURE(streamed);
  const Dataset validation = noisy_blobs(60, 9);
  // A large step makes the validation loss go up and down, so the best epoch is not the last.
  const auto configure = [&](StopFixture& g) {
    g.settings.epochs = 6;
    g.settings.early_stopping = 100;  // never ends the run early; keeps the best epoch
    g.settings.trainer.learning_rate = 0.6f;
  };
  const auto with_validation = [&](RunData d) {
    d.evaluate = [&](const Trainer& t) { return t.evaluate(validation); };
    return d;
  };

  StopFixture f(c, streamed);
  configure(f);
  f.settings.out = f.dir / "whole.st";
  const RunState whole = f.run(f.settings, with_validation(f.data()));
  REQUIRE(whole.best_epoch < f.settings.epochs);  // else the test would not tell copies apart
  const std::vector<char> expected = tensor_bytes(f.settings.out);

  // Inside the epoch after the best one, and inside the last epoch.
  for (const int stop_step :
       {whole.best_epoch * kStepsPerEpoch + 3, (f.settings.epochs - 1) * kStepsPerEpoch + 5}) {
    CAPTURE(stop_step);
    StopFixture g(c, streamed);
    configure(g);
    StopFlag flag{0};
    RunSettings stopping = g.settings;
    stopping.out = g.dir / "stopped.st";
    stopping.stop = &flag;
    const RunState state = g.run(stopping, with_validation(g.data([&](int step) {
                                   if (step == stop_step) flag.store(15);
                                 })));
    REQUIRE(state.stop_request == 15);
    RunCheckpoint checkpoint(stopping.out);
    REQUIRE(checkpoint.metadata().position.step > 0);
    RunSettings resumed = g.settings;
    resumed.out = g.dir / "resumed.st";
    const RunState end = g.run(resumed, with_validation(g.data()), &checkpoint);
    CHECK(end.best_epoch == whole.best_epoch);
    CHECK(tensor_bytes(resumed.out) == expected);
  }
}
