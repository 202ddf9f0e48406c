// `shardprop train` told to stop by a signal, as Slurm or a user at the keyboard does: SIGTERM,
// SIGINT and SIGUSR1 at random moments leave a checkpoint, the message gives the command that
// resumes it, and the resumed run ends bitwise equal to the uninterrupted one; a second SIGINT
// aborts at once; --checkpoint-every takes steps and times.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_runner.hpp"
#include "shardprop/checkpoint.hpp"
#include "test_util.hpp"

extern char** environ;

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using shardprop::test::Args;
using shardprop::test::read_bytes;
using shardprop::test::read_text;
using shardprop::test::Run;
using shardprop::test::run_cli;
using shardprop::test::TempDir;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The tensors of a safetensors file (entries and bytes), without its metadata.
std::pair<nlohmann::json, std::vector<char>> tensors_of(const fs::path& path) {
  const std::vector<char> bytes = read_bytes(path);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + n);
  header.erase("__metadata__");
  return {header, std::vector<char>(bytes.begin() + 8 + n, bytes.end())};
}

// `shardprop ARGS` started in DIR, its output going to files there.
struct Started {
  pid_t pid = -1;
  fs::path out, err;
};

Started start_cli(const TempDir& dir, const Args& args) {
  std::vector<std::string> words{SHARDPROP_CLI_PATH};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  Started started{-1, dir / "signal.stdout", dir / "signal.stderr"};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.path().c_str());
  posix_spawn_file_actions_addopen(&actions, 1, started.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 2, started.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  const int rc = posix_spawn(&started.pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return started;
}

// Waits until the run has printed its header: its signal handlers are installed by then.
void wait_until_training(const Started& started) {
  const auto give_up = Clock::now() + std::chrono::seconds(60);
  while (read_text(started.out).find("shardprop ") == std::string::npos) {
    int status = 0;
    REQUIRE(::waitpid(started.pid, &status, WNOHANG) == 0);  // still running
    REQUIRE(Clock::now() < give_up);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

int wait_for(const Started& started) {
  int status = 0;
  REQUIRE(::waitpid(started.pid, &status, 0) == started.pid);
  return status;
}

// The words of the command after "resume with: " in the stop message, without "shardprop".
Args resume_command(const std::string& err) {
  const std::string marker = "resume with: shardprop ";
  const std::size_t at = err.find(marker);
  REQUIRE(at != std::string::npos);
  std::istringstream words(err.substr(at + marker.size(), err.find('\n', at) - at - marker.size()));
  Args args;
  for (std::string word; words >> word;) args.push_back(word);
  return args;
}

const char* signal_name(int signal) { return signal == SIGINT ? "SIGINT" : "SIGTERM"; }

}  // namespace

TEST_CASE("SIGTERM and SIGINT at random moments leave a checkpoint that resumes bitwise",
          "[cli][signals]") {
  const bool streamed = GENERATE(false, true);
  CAPTURE(streamed);
  TempDir dir;
  shardprop::test::write_text(dir / "train.csv", shardprop::test::separable_csv(5, 240));
  // Adam, dropout and momentum-free SGD aside, this is the case with the most state: Adam's
  // buffers and step count, dropout masks keyed by step, batch-norm running statistics.
  Args common{"train",       "--data", "train.csv", "--layers", "16,16",        "--batch-norm",
              "--dropout",   "0.1",    "--epochs",  "400",      "--batch-size", "8",
              "--optimizer", "adam",   "--lr",      "0.01",     "--threads",    "1"};
  if (streamed) common.insert(common.end(), {"--stream", "--shuffle-buffer-mb", "0.001"});
  auto with = [&](Args extra) {
    Args args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };

  // The uninterrupted run, timed from its header (when its handlers are in place) to its end.
  const Started reference = start_cli(dir, with({"--out", "whole.st"}));
  wait_until_training(reference);
  const auto began = Clock::now();
  const int reference_status = wait_for(reference);
  const double training_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - began).count();
  REQUIRE(WIFEXITED(reference_status));
  REQUIRE(WEXITSTATUS(reference_status) == 0);

  // A signal after a random part of the run's length: the run is then training (or, rarely,
  // already done), in a step, between steps, evaluating or writing.
  std::mt19937_64 bits(streamed ? 2 : 1);
  int stopped = 0;
  for (int attempt = 0; attempt < 12; ++attempt) {
    const int signal = attempt % 2 == 0 ? SIGTERM : SIGINT;
    std::string out = "m";  // (not "m" + ...: GCC 12 warns falsely about that with -O3)
    out.append(std::to_string(attempt)).append(".st");
    CAPTURE(attempt, signal_name(signal));
    const Started started = start_cli(dir, with({"--out", out}));
    wait_until_training(started);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(
        std::uniform_real_distribution<double>(0.0, 0.8)(bits) * training_ms));
    REQUIRE(::kill(started.pid, signal) == 0);
    const int status = wait_for(started);
    const std::string err = read_text(started.err);
    CAPTURE(err);
    REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 0) {  // it had finished
      CHECK(tensors_of(dir / out) == tensors_of(dir / "whole.st"));
      continue;
    }
    REQUIRE(WEXITSTATUS(status) == 75);
    ++stopped;
    std::string stopped_by = "shardprop: stopped by ";
    stopped_by.append(signal_name(signal)).append(" after epoch ");
    CHECK_THAT(err, Contains(stopped_by));
    std::string written = "; checkpoint written to ";
    written.append(out).append("; resume with: shardprop train --resume ").append(out);
    written.append(" --threads 1\n");
    CHECK_THAT(err, Contains(written));
    CHECK_NOTHROW(shardprop::load_model(dir / out));
    const Run resumed = run_cli(dir, resume_command(err));
    CAPTURE(resumed.err);
    REQUIRE(resumed.exit_code == 0);
    CHECK(tensors_of(dir / out) == tensors_of(dir / "whole.st"));
  }
  // The delays are fractions of the run's own length, so nearly every signal lands in it.
  CHECK(stopped > 0);
}

TEST_CASE("SIGUSR1 without --out writes ./checkpoint.* and the resume command continues it",
          "[cli][signals]") {
  TempDir dir;
  shardprop::test::write_text(dir / "train.csv", shardprop::test::separable_csv(6, 240));
  const Args common{"train", "--data",       "train.csv", "--layers",    "16",  "--epochs",
                    "150",   "--batch-size", "8",         "--optimizer", "sgd", "--momentum",
                    "0.9",   "--lr",         "0.01",      "--threads",   "1",   "--checkpoint-dir",
                    "ck",    "--keep",       "50"};
  Args whole_args = common;
  whole_args.insert(whole_args.end(), {"--out", "whole.st"});
  REQUIRE(run_cli(dir, whole_args).exit_code == 0);

  const Started started = start_cli(dir, common);
  wait_until_training(started);
  REQUIRE(::kill(started.pid, SIGUSR1) == 0);
  const int status = wait_for(started);
  const std::string err = read_text(started.err);
  CAPTURE(err);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 0) return;  // finished before the signal: nothing to resume
  REQUIRE(WEXITSTATUS(status) == 75);
  CHECK_THAT(err, Contains("stopped by SIGUSR1 after epoch "));
  CHECK_THAT(err, Contains("checkpoint written to ck/checkpoint.epoch-"));
  const Args resume = resume_command(err);
  // The output options given are repeated; the checkpoint records the rest.
  CHECK(resume[3] == "--checkpoint-dir");
  const Run resumed = run_cli(dir, resume);
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  // Without --out, a resumed run writes its result back into the file it resumed.
  CHECK(tensors_of(dir / resume[2]) == tensors_of(dir / "whole.st"));
}

TEST_CASE("a second SIGINT aborts at once and leaves only whole files", "[cli][signals]") {
  TempDir dir;
  shardprop::test::write_text(dir / "train.csv", shardprop::test::separable_csv(7, 300));
  // Wide layers: each checkpoint takes a while to write, so the second SIGINT can land in it.
  const Started started = start_cli(
      dir, {"train", "--data", "train.csv", "--layers", "400,400", "--epochs", "500", "--optimizer",
            "adam", "--out", "m.st", "--checkpoint-every", "3steps", "--threads", "1"});
  wait_until_training(started);
  REQUIRE(::kill(started.pid, SIGINT) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(::kill(started.pid, SIGINT) == 0);
  const int status = wait_for(started);
  // Killed by the second SIGINT, or (when it came too late) stopped by the first.
  if (WIFSIGNALED(status)) {
    CHECK(WTERMSIG(status) == SIGINT);
  } else {
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 75);
  }
  for (const std::string& name : shardprop::test::directory_entries(dir.path())) {
    if (!name.ends_with(".st") && !name.ends_with(".safetensors")) continue;
    CAPTURE(name);
    CHECK_NOTHROW(shardprop::load_model(dir / name));
  }
}

TEST_CASE("a checkpoint interval is epochs, steps or a time, and nothing else",
          "[cli][signals][checkpoint]") {
  TempDir dir;
  shardprop::test::write_text(dir / "train.csv", shardprop::test::separable_csv(8, 100));
  const Args common{"train",        "--data", "train.csv", "--layers", "8",      "--epochs", "3",
                    "--batch-size", "16",     "--out",     "m.st",     "--keep", "100"};
  auto run = [&](const std::string& every) {
    Args args = common;
    args.insert(args.end(), {"--checkpoint-every", every});
    return run_cli(dir, args);
  };
  // 100 rows in minibatches of 16: 7 steps an epoch, 21 in all; every 10 steps: after steps
  // 10 (epoch 2, its step 3) and 20 (epoch 3, its step 6).
  REQUIRE(run("10steps").exit_code == 0);
  CHECK(fs::exists(dir / "m.epoch-000001.step-0000000003.safetensors"));
  CHECK(fs::exists(dir / "m.epoch-000002.step-0000000006.safetensors"));
  REQUIRE(run("1epochs").exit_code == 0);
  CHECK(fs::exists(dir / "m.epoch-000002.safetensors"));
  CHECK(run("2h").exit_code == 0);
  CHECK(run("0").exit_code == 0);
  for (const std::string bad : {"5x", "steps", "1.5h", "3 steps", "2d"}) {
    CAPTURE(bad);
    const Run r = run(bad);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains("--checkpoint-every '" + bad + "': expected N or Nepochs"));
  }
}
