// train_run as a library caller uses it: restart seeds, early stopping keeping the best
// epoch's weights, periodic checkpoints named and pruned (temporary files of live writers left
// alone), the best restart kept, a run resumed from any of its checkpoints ending bitwise equal
// to the uninterrupted one, and a disk that fills up or fails losing nothing already written.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "base/atomic_file.hpp"
#include "noisy_blobs.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/memory_estimate.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/training_run.hpp"
#include "test_util.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;

namespace {

using test::noisy_blobs;

struct Fixture {
  test::TempDir dir;
  Dataset train = noisy_blobs(120, 1);
  Dataset validation = noisy_blobs(60, 2);
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

// The model's own tensors in a file: every float (running statistics included) and counter.
std::vector<char> tensor_bytes(const std::filesystem::path& path) {
  const Model model = load_model(path);
  const auto* begin = reinterpret_cast<const char*>(model.parameters().data());
  std::vector<char> bytes(begin, begin + model.parameters().size_bytes());
  const auto* counters = reinterpret_cast<const char*>(model.counters().data());
  bytes.insert(bytes.end(), counters, counters + model.counters().size_bytes());
  return bytes;
}

// Every tensor of a file, its header entry and bytes ("best.*", "latest.*" and "optimizer.*"
// included), without the metadata.
std::string all_tensors(const std::filesystem::path& path) {
  const std::vector<char> bytes = test::read_bytes(path);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  header.erase(header.find("\"__metadata__\""));  // the writer puts it last
  return header + std::string(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
}

bool has_tensor(const std::filesystem::path& path, const std::string& name) {
  const std::vector<char> bytes = test::read_bytes(path);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  return header.find("\"" + name + "\"") != std::string::npos;
}

// A run that overshoots, so its validation loss stops falling and early stopping ends it,
// with batch norm, so that the running statistics are part of what the best weights are.
void overshoot(Fixture& f) {
  f.settings.spec =
      ModelSpec::mlp(2, std::vector<int>{8}, 3, Activation::tanh, Loss::xent, /*batch_norm=*/true);
  f.settings.epochs = 30;
  f.settings.early_stopping = 2;
  f.settings.trainer.learning_rate = 0.5f;
  f.settings.trainer.optimizer = Optimizer::sgd;
}

// Clears the injected write fault however the test ends.
struct FaultGuard {
  explicit FaultGuard(detail::InjectedWriteFault fault) {
    detail::inject_write_fault_for_testing(std::move(fault));
  }
  ~FaultGuard() { detail::inject_write_fault_for_testing(std::nullopt); }
  FaultGuard(const FaultGuard&) = delete;
  FaultGuard& operator=(const FaultGuard&) = delete;
};

bool has_temporary_file(const std::filesystem::path& dir) {
  const std::vector<std::string> names = test::directory_entries(dir);
  return std::any_of(names.begin(), names.end(), [](const std::string& name) {
    return name.find(".tmp.") != std::string::npos;
  });
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

TEST_CASE("with early stopping the result holds the best epoch's weights, bitwise",
          "[training_run][early-stopping]") {
  Fixture f;
  overshoot(f);
  f.settings.out = f.dir / "stopped.st";
  std::vector<double> losses;
  RunObserver observer;
  observer.epoch_finished = [&](const EpochResult& e) { losses.push_back(e.evaluation.loss); };
  const RunState state = train_run(f.settings, f.metadata, f.data, observer);
  const int trained = static_cast<int>(losses.size());
  REQUIRE(trained < f.settings.epochs);  // it did stop early
  const int best =
      static_cast<int>(std::min_element(losses.begin(), losses.end()) - losses.begin()) + 1;
  REQUIRE(state.best_epoch == best);
  REQUIRE(best < trained);

  // The same run stopped at the best epoch: its weights are the result's.
  RunSettings at_best = f.settings;
  at_best.early_stopping = 0;
  at_best.epochs = best;
  at_best.out = f.dir / "at_best.st";
  train_run(at_best, f.metadata, f.data);
  CHECK(tensor_bytes(f.settings.out) == tensor_bytes(at_best.out));
  // ... and the latest weights, which a resumed run continues from, are the last epoch's.
  RunSettings at_last = at_best;
  at_last.epochs = trained;
  at_last.out = f.dir / "at_last.st";
  train_run(at_last, f.metadata, f.data);
  CHECK(tensor_bytes(f.settings.out) != tensor_bytes(at_last.out));
  CHECK(has_tensor(f.settings.out, "latest.0.weight"));
  CHECK(has_tensor(f.settings.out, "latest.1.running_var"));
  CHECK_FALSE(has_tensor(at_best.out, "latest.0.weight"));  // one copy when best is last
  const RunCheckpoint result(f.settings.out);
  CHECK(result.metadata().epochs == trained);  // the optimizer state is the latest epoch's
  CHECK(result.metadata().run.best_epoch == best);

  SECTION("resuming the finished result trains nothing and writes the same file") {
    RunCheckpoint checkpoint(f.settings.out);
    RunSettings again = f.settings;
    again.out = f.dir / "again.st";
    int epochs = 0;
    RunObserver count;
    count.epoch_finished = [&](const EpochResult&) { ++epochs; };
    train_run(again, checkpoint.metadata(), f.data, count, &checkpoint);
    CHECK(epochs == 0);
    CHECK(all_tensors(again.out) == all_tensors(f.settings.out));
  }
}

TEST_CASE("several restarts with early stopping keep the restart with the lowest best loss",
          "[training_run][early-stopping]") {
  Fixture f;
  overshoot(f);
  f.settings.restarts = 3;
  f.settings.out = f.dir / "best.st";
  std::vector<double> lowest(3, 1e300);
  std::vector<double> told(3);
  RunObserver observer;
  observer.epoch_finished = [&](const EpochResult& e) {
    lowest.at(e.restart) = std::min(lowest.at(e.restart), e.evaluation.loss);
  };
  observer.restart_finished = [&](int r, double loss, bool) { told.at(r) = loss; };
  const RunState state = train_run(f.settings, f.metadata, f.data, observer);
  CHECK(told == lowest);
  const int best =
      static_cast<int>(std::min_element(lowest.begin(), lowest.end()) - lowest.begin());
  CHECK(state.best_restart == best);
  CHECK(state.best_restart_loss == lowest[best]);
}

TEST_CASE("a run with early stopping resumed from any checkpoint ends with the same result",
          "[training_run][early-stopping][resume]") {
  Fixture f;
  overshoot(f);
  f.settings.restarts = GENERATE(1, 2);
  CAPTURE(f.settings.restarts);
  f.settings.out = f.dir / "whole.st";
  f.settings.checkpoint_every = 1;
  f.settings.keep = 100;
  std::vector<std::filesystem::path> written;
  RunObserver observer;
  observer.checkpoint_written = [&](const std::filesystem::path& p) { written.push_back(p); };
  train_run(f.settings, f.metadata, f.data, observer);
  REQUIRE(written.size() > 3);
  // Some periodic checkpoints hold a best epoch before their own: the case to resume.
  CHECK(std::any_of(written.begin(), written.end(),
                    [](const std::filesystem::path& p) { return has_tensor(p, "best.0.weight"); }));
  written.push_back(f.settings.out);
  for (const std::filesystem::path& from : written) {
    CAPTURE(from);
    RunCheckpoint checkpoint(from);
    RunSettings resumed = f.settings;
    resumed.out = f.dir / "resumed.st";
    resumed.checkpoint_every = 0;
    train_run(resumed, checkpoint.metadata(), f.data, {}, &checkpoint);
    CHECK(all_tensors(resumed.out) == all_tensors(f.settings.out));
  }
}

TEST_CASE("a disk that fills up during a run loses nothing already written",
          "[training_run][disk-errors]") {
  Fixture f;
  f.settings.epochs = 6;
  f.settings.checkpoint_every = 1;
  f.settings.keep = 10;
  f.settings.out = f.dir / "m.st";
  // A run whose files the failing one writes over: its result and checkpoints must survive.
  train_run(f.settings, f.metadata, f.data);
  const std::vector<char> previous_result = test::read_bytes(f.settings.out);
  const std::vector<char> previous_third = test::read_bytes(f.dir / "m.epoch-000003.safetensors");
  const std::vector<char> previous_fifth = test::read_bytes(f.dir / "m.epoch-000005.safetensors");
  const std::uintmax_t checkpoint_size = std::filesystem::file_size(f.settings.out);

  const int error = GENERATE(ENOSPC, EIO);
  CAPTURE(std::strerror(error));
  f.settings.trainer.seed = 8;  // different weights, so a replaced file would show
  std::map<std::filesystem::path, std::vector<char>> written;
  RunObserver observer;
  observer.checkpoint_written = [&](const std::filesystem::path& p) {
    written[p] = test::read_bytes(p);
  };
  {
    // Room for two and a half checkpoints: the third fails midway.
    const FaultGuard fault({f.dir.path().string(), error, false, checkpoint_size * 5 / 2});
    CHECK_THROWS_WITH(train_run(f.settings, f.metadata, f.data, observer),
                      Contains((f.dir / "m.epoch-000003.safetensors").string()) &&
                          Contains(std::strerror(error)) &&
                          Contains("training stopped after epoch 3") &&
                          Contains("m.epoch-000002.safetensors"));
  }
  REQUIRE(written.size() == 2);
  for (const auto& [path, bytes] : written) CHECK(test::read_bytes(path) == bytes);
  CHECK(test::read_bytes(f.dir / "m.epoch-000003.safetensors") == previous_third);
  CHECK(test::read_bytes(f.dir / "m.epoch-000005.safetensors") == previous_fifth);
  CHECK(test::read_bytes(f.settings.out) == previous_result);
  CHECK_FALSE(has_temporary_file(f.dir.path()));

  SECTION("and the run resumes from its newest checkpoint once there is room") {
    RunCheckpoint checkpoint(f.dir / "m.epoch-000002.safetensors");
    RunSettings resumed = f.settings;
    resumed.out = f.dir / "resumed.st";
    train_run(resumed, checkpoint.metadata(), f.data, {}, &checkpoint);
    RunSettings whole = f.settings;
    whole.out = f.dir / "whole.st";
    whole.checkpoint_dir = f.dir / "whole";
    train_run(whole, f.metadata, f.data);
    CHECK(tensor_bytes(resumed.out) == tensor_bytes(whole.out));
  }
}

TEST_CASE("a result that cannot be written stops the run naming the file and the OS error",
          "[training_run][disk-errors]") {
  Fixture f;
  f.settings.checkpoint_every = 1;
  f.settings.out = f.dir / "result.st";
  test::write_text(f.settings.out, "an earlier result");
  {
    const FaultGuard fault({"result.st", EROFS, true, 0});  // as a read-only directory would
    CHECK_THROWS_WITH(train_run(f.settings, f.metadata, f.data),
                      Contains(f.settings.out.string()) && Contains(std::strerror(EROFS)) &&
                          Contains("the newest checkpoint is"));
  }
  CHECK(test::read_text(f.settings.out) == "an earlier result");
  CHECK_NOTHROW(load_model(f.dir / "result.epoch-000003.safetensors"));
  CHECK_FALSE(has_temporary_file(f.dir.path()));
}

TEST_CASE("pruning removes the temporary files of periodic checkpoints whose writer is gone",
          "[training_run]") {
  test::TempDir dir;
  const PeriodicCheckpoints periodic = PeriodicCheckpoints::next_to(dir / "m.st", {}, false, 2);
  std::string host;
  {
    detail::AtomicFileWriter probe(dir / "probe");
    host = detail::parse_temporary_name(probe.temporary_path().filename().string())->host;
  }
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  REQUIRE(::waitpid(child, nullptr, 0) == child);
  const std::string dead = std::to_string(child) + "@" + host;
  const std::string alive = std::to_string(::getpid()) + "@" + host;
  test::write_text(dir / (".m.epoch-000004.safetensors.tmp." + dead + ".Ab12Cd"), "x");
  test::write_text(dir / (".m.r001.epoch-000002.safetensors.tmp." + dead + ".Ab12Cd"), "x");
  const std::vector<std::string> kept{".m.epoch-000005.safetensors.tmp." + alive + ".Ef34Gh",
                                      ".m.st.tmp." + dead + ".Ij56Kl",  // the result's: its writer
                                      ".mm.epoch-000001.safetensors.tmp." + dead + ".Mn78Op"};
  for (const std::string& name : kept) test::write_text(dir / name, "x");
  periodic.prune();
  std::vector<std::string> expected = kept;
  std::sort(expected.begin(), expected.end());
  CHECK(test::directory_entries(dir.path()) == expected);
}

TEST_CASE(
    "the memory estimate counts what the trainer allocates, and a run that does not fit "
    "is refused before it starts",
    "[training_run][memory]") {
  const ModelSpec spec = ModelSpec::mlp(10, std::vector<int>{20, 30}, 3, Activation::relu,
                                        Loss::xent, /*batch_norm=*/true, 0.1f);
  TrainerSettings settings;
  settings.batch_size = 64;
  settings.shards = 4;
  settings.threads = 2;
  settings.optimizer = Optimizer::adam;
  const Model model(spec);
  const MemoryEstimate m = estimate_training_memory(spec, settings, 1, true);
  CHECK(m.parameters == model.parameters().size_bytes() + model.counters().size_bytes());
  CHECK(m.optimizer_state == 2 * model.parameters().size_bytes());
  CHECK(m.gradients == 4 * model.parameters().size_bytes());
  CHECK(m.best_weights == m.parameters);
  // Per row: outputs of 7 of the 9 layers (dense 20, bn, dropout, dense 30, bn, dropout,
  // dense 3: each relu overwrites its batch norm's output), xhat of 2 batch norms, masks of 2
  // dropouts, 2 deltas of the widest (30).
  const std::uint64_t per_row = (20 * 3 + 30 * 3 + 3) + (20 + 30) + (20 + 30) + 2 * 30;
  const std::uint64_t inference = 2 * 256 * (20 * 3 + 30 * 3 + 3);
  CHECK(m.workspaces == 4 * (64 * per_row + 64 * (10 + 1) + inference));
  CHECK(m.total() ==
        m.parameters + m.optimizer_state + m.gradients + m.workspaces + m.best_weights);

  SECTION("a cap below the estimate refuses the run, saying both numbers") {
    Fixture f;
    f.settings.max_memory = 4096;
    bool started = false;
    RunObserver observer;
    observer.restart_started = [&](int, const Trainer&, bool) { started = true; };
    CHECK_THROWS_WITH(train_run(f.settings, f.metadata, f.data, observer),
                      Contains("training needs about") && Contains("memory limit of 4.00 kB") &&
                          Contains("batch size"));
    CHECK_FALSE(started);
    f.settings.max_memory = 1ULL << 30;
    CHECK_NOTHROW(train_run(f.settings, f.metadata, f.data));
  }
  SECTION("a model larger than the machine is refused before anything is allocated") {
    Fixture f;
    f.settings.spec =
        ModelSpec::mlp(2, std::vector<int>{1000000, 1000000}, 3, Activation::relu, Loss::xent);
    CHECK_THROWS_WITH(train_run(f.settings, f.metadata, f.data),
                      Contains("TB") && Contains("available memory"));
  }
  SECTION("memory sizes parse with binary units, and anything else is an error naming it") {
    CHECK(parse_memory_size("8G") == 8ULL << 30);
    CHECK(parse_memory_size("512m") == 512ULL << 20);
    CHECK(parse_memory_size("1.5GiB") == 3ULL << 29);
    CHECK(parse_memory_size("64kB") == 64ULL << 10);
    CHECK(parse_memory_size("100000") == 100000);
    for (const char* bad : {"", "G", "8X", "-1G", "0", "8 G", "1e3"}) {
      CAPTURE(bad);
      CHECK_THROWS_WITH(parse_memory_size(bad), Contains("is not a memory size"));
    }
  }
}
