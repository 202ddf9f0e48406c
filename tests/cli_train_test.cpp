// `shardprop train` as a user runs it: resume equals an uninterrupted run, kill -9 never leaves
// a damaged file under a final name, restarts keep the best, early stopping stops, a config
// file equals its flags, and every bad checkpoint or contradictory option gets its message
// and exit status.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli_runner.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/model.hpp"
#include "test_util.hpp"

extern char** environ;

namespace {

using Catch::Matchers::Contains;
using shardprop::test::Args;
using shardprop::test::directory_entries;
using shardprop::test::lines_of;
using shardprop::test::read_bytes;
using shardprop::test::Run;
using shardprop::test::run_cli;
using shardprop::test::separable_csv;
using shardprop::test::TempDir;
using shardprop::test::write_bytes;
using shardprop::test::write_text;

struct TrainFixture {
  TempDir dir;
  TrainFixture() { write_text(dir / "train.csv", separable_csv(21, 300)); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  Run train(const Args& extra) const {
    return run_cli(dir, shardprop::test::train_args({"--data", "train.csv", "--layers", "8",
                                                     "--batch-size", "16", "--lr", "0.2"},
                                                    extra));
  }
};

// The tensor bytes and tensor entries of two safetensors files are the same (their metadata
// may differ, for example in the file names they record).
bool same_tensors(const std::filesystem::path& a, const std::filesystem::path& b) {
  auto parts = [](const std::filesystem::path& p) {
    const std::vector<char> bytes = read_bytes(p);
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + n);
    header.erase("__metadata__");
    return std::make_pair(header, std::vector<char>(bytes.begin() + 8 + n, bytes.end()));
  };
  return parts(a) == parts(b);
}

// Removes one metadata key of a safetensors file, as a file written before the key existed.
// The header keeps its length (padded with spaces), so the tensor data and checksum stay.
void drop_metadata_key(const std::filesystem::path& path, const std::string& key) {
  std::vector<char> bytes = read_bytes(path);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + n);
  REQUIRE(header["__metadata__"].erase(key) == 1);
  std::string text = header.dump();
  REQUIRE(text.size() <= n);
  text.append(n - text.size(), ' ');
  std::copy(text.begin(), text.end(), bytes.begin() + 8);
  write_bytes(path, bytes);
}

// The model's own tensors as load_model reads them (floats, then counters).
std::vector<char> model_bytes(const std::filesystem::path& path) {
  const shardprop::Model model = shardprop::load_model(path);
  const auto* floats = reinterpret_cast<const char*>(model.parameters().data());
  std::vector<char> bytes(floats, floats + model.parameters().size_bytes());
  const auto* counters = reinterpret_cast<const char*>(model.counters().data());
  bytes.insert(bytes.end(), counters, counters + model.counters().size_bytes());
  return bytes;
}

std::vector<double> column_of(const std::string& out, const std::string& label) {
  std::vector<double> values;
  const std::regex number(label + R"( +(-?\d+\.\d+))");
  for (const std::string& line : lines_of(out)) {
    if (line.rfind("epoch", 0) != 0) continue;
    std::smatch m;
    if (std::regex_search(line, m, number)) values.push_back(std::stod(m[1]));
  }
  return values;
}

}  // namespace

TEST_CASE("a resumed run ends bitwise equal to the uninterrupted run", "[cli][resume]") {
  TrainFixture f;
  using Row = std::tuple<std::string, Args>;
  const auto [name, settings] = GENERATE(table<std::string, Args>({
      Row{"sgd", {}},
      Row{"nesterov momentum, dropout, batch norm, cosine schedule",
          {"--momentum", "0.9", "--nesterov", "--dropout", "0.2", "--batch-norm", "--lr-schedule",
           "cosine"}},
      Row{"adam with clipping and a validation split",
          {"--optimizer", "adam", "--lr", "0.01", "--clip-grad-norm", "0.5", "--val-split", "0.2"}},
      Row{"step schedule, weight decay, 3 shards",
          {"--lr-schedule", "step", "--lr-step-epochs", "2", "--weight-decay", "0.001", "--shards",
           "3"}},
  }));
  CAPTURE(name);
  Args whole = settings;
  whole.insert(whole.end(), {"--epochs", "6", "--checkpoint-every", "2", "--keep", "5", "--out",
                             "whole.safetensors"});
  const Run uninterrupted = f.train(whole);
  CAPTURE(uninterrupted.out, uninterrupted.err);
  REQUIRE(uninterrupted.exit_code == 0);
  REQUIRE(std::filesystem::exists(f.dir / "whole.epoch-000002.safetensors"));
  REQUIRE(std::filesystem::exists(f.dir / "whole.epoch-000004.safetensors"));

  SECTION("from a periodic checkpoint, with no other option") {
    const Run resumed = run_cli(f.dir, {"train", "--resume", "whole.epoch-000002.safetensors",
                                        "--out", "resumed.safetensors"});
    CAPTURE(resumed.out, resumed.err);
    REQUIRE(resumed.exit_code == 0);
    CHECK_THAT(resumed.out, Contains("resumed at epoch 2"));
    CHECK(same_tensors(f.dir / "whole.safetensors", f.dir / "resumed.safetensors"));
    // The printed epochs are the uninterrupted run's epochs 3..6.
    const std::vector<double> all = column_of(uninterrupted.out, "loss");
    const std::vector<double> rest = column_of(resumed.out, "loss");
    REQUIRE(all.size() == 6);
    REQUIRE(rest.size() == 4);
    CHECK(std::equal(rest.begin(), rest.end(), all.begin() + 2));
  }
  SECTION("and the final file is itself a checkpoint that continues to more epochs") {
    Args longer = settings;
    longer.insert(longer.end(), {"--epochs", "8", "--out", "eight.safetensors"});
    REQUIRE(f.train(longer).exit_code == 0);
    const Run more = run_cli(f.dir, {"train", "--resume", "eight.safetensors", "--epochs", "8",
                                     "--out", "again.safetensors"});
    CAPTURE(more.err);
    REQUIRE(more.exit_code == 0);
    CHECK(column_of(more.out, "loss").empty());  // already at 8 epochs: nothing to do
    CHECK(same_tensors(f.dir / "eight.safetensors", f.dir / "again.safetensors"));
  }
}

TEST_CASE("a resumed run finds its data from any directory, and is told where if it moved",
          "[cli][resume]") {
  TempDir first;  // where the run starts, with its data in a subdirectory
  TempDir elsewhere;
  std::filesystem::create_directory(first / "data");
  write_text(first / "data" / "train.csv", separable_csv(21, 300));
  write_text(first / "data" / "val.csv", separable_csv(22, 50));
  auto run_for = [](const char* epochs, const char* out) {
    return Args{"train",    "--data",   "data/train.csv", "--val", "data/val.csv",
                "--layers", "8",        "--lr",           "0.2",   "--momentum",
                "0.5",      "--epochs", epochs,           "--out", out};
  };
  const Args whole = run_for("4", "whole.st");
  const Args part = run_for("2", "m.st");
  REQUIRE(run_cli(first, whole).exit_code == 0);
  REQUIRE(run_cli(first, part).exit_code == 0);
  const std::string checkpoint = (first / "m.st").string();

  SECTION("without --out it continues in the file it resumed, replaced whole") {
    const Run resumed = run_cli(elsewhere, {"train", "--resume", checkpoint, "--epochs", "4"});
    CAPTURE(resumed.out, resumed.err);
    REQUIRE(resumed.exit_code == 0);
    CHECK_THAT(resumed.out, Contains("val loss") && Contains("wrote " + checkpoint));
    CHECK(same_tensors(first / "whole.st", first / "m.st"));
    CHECK(directory_entries(elsewhere.path()).empty());
    // "shardprop.data" still shows the name as given.
    CHECK(shardprop::read_safetensors_metadata(first / "m.st").at("shardprop.data") ==
          "data/train.csv");
  }
  SECTION("a data file that moved is an error that names it and suggests --data") {
    std::filesystem::rename(first / "data" / "train.csv", first / "moved.csv");
    const std::vector<char> before = read_bytes(first / "m.st");
    const Run gone = run_cli(elsewhere, {"train", "--resume", checkpoint, "--epochs", "4"});
    CHECK(gone.exit_code == 1);
    CHECK_THAT(gone.err,
               Contains((first / "data" / "train.csv").string()) && Contains("--data FILE"));
    CHECK(lines_of(gone.err).size() == 1);
    CHECK(read_bytes(first / "m.st") == before);
    const Run told = run_cli(elsewhere, {"train", "--resume", checkpoint, "--epochs", "4", "--data",
                                         (first / "moved.csv").string()});
    CAPTURE(told.err);
    REQUIRE(told.exit_code == 0);
    CHECK(same_tensors(first / "whole.st", first / "m.st"));
  }
  SECTION("a checkpoint that records only the relative paths still resumes where they hold") {
    drop_metadata_key(first / "m.st", "shardprop.data_files");
    const Run away = run_cli(elsewhere, {"train", "--resume", checkpoint, "--epochs", "4"});
    CHECK(away.exit_code == 1);  // not exit status 3: the message names the file and the fix
    CHECK_THAT(away.err, Contains("data/train.csv") && Contains("--data"));
    const Run here = run_cli(first, {"train", "--resume", "m.st", "--epochs", "4"});
    CAPTURE(here.err);
    REQUIRE(here.exit_code == 0);
    CHECK(same_tensors(first / "whole.st", first / "m.st"));
  }
}

TEST_CASE("resume refuses settings that contradict the checkpoint", "[cli][resume]") {
  TrainFixture f;
  REQUIRE(f.train({"--epochs", "2", "--momentum", "0.5", "--out", "m.safetensors"}).exit_code == 0);
  const std::vector<char> before = read_bytes(f.dir / "m.safetensors");
  SECTION("a changed learning rate names the option and both values") {
    const Run run =
        run_cli(f.dir, {"train", "--resume", "m.safetensors", "--lr", "0.5", "--epochs", "3"});
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Contains("--lr 0.5 differs from the 0.2"));
  }
  SECTION("--resume with --init is a usage error") {
    const Run run =
        run_cli(f.dir, {"train", "--resume", "m.safetensors", "--init", "m.safetensors"});
    CHECK(run.exit_code == 2);
  }
  SECTION("a weights file without training state is not resumable") {
    const shardprop::Model plain(shardprop::ModelSpec::mlp(
        2, std::vector<int>{8}, 2, shardprop::Activation::relu, shardprop::Loss::xent));
    shardprop::save_safetensors(plain, f.dir / "plain.safetensors");
    const Run run = run_cli(f.dir, {"train", "--resume", "plain.safetensors"});
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Contains("plain.safetensors") && Contains("shardprop.train_options"));
  }
  CHECK(read_bytes(f.dir / "m.safetensors") == before);
}

TEST_CASE("a damaged checkpoint is rejected with a message naming the problem",
          "[cli][resume][checkpoint]") {
  TrainFixture f;
  REQUIRE(f.train({"--epochs", "1", "--optimizer", "adam", "--lr", "0.01", "--out", "c.st"})
              .exit_code == 0);
  const std::vector<char> good = read_bytes(f.dir / "c.st");
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, good.data(), 8);
  const std::string header(good.begin() + 8, good.begin() + 8 + header_length);
  auto with_header = [&](std::string text) {
    text.append((8 - text.size() % 8) % 8, ' ');
    std::vector<char> bytes;
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((text.size() >> (8 * i)) & 0xff));
    bytes.insert(bytes.end(), text.begin(), text.end());
    bytes.insert(bytes.end(), good.begin() + 8 + header_length, good.end());
    return bytes;
  };
  nlohmann::json parsed = nlohmann::json::parse(header);
  using Case = std::tuple<std::string, std::vector<char>, std::string>;
  std::vector<Case> cases;
  cases.push_back({"truncated in the header",
                   std::vector<char>(good.begin(), good.begin() + 8 + header_length / 2),
                   "exceeds the file"});
  cases.push_back(
      {"truncated in the data", std::vector<char>(good.begin(), good.end() - 12), "outside"});
  cases.push_back({"shorter than a header length",
                   std::vector<char>(good.begin(), good.begin() + 5), "truncated"});
  {
    std::vector<char> bad = good;
    const std::uint64_t huge = 1ull << 40;
    std::memcpy(bad.data(), &huge, 8);
    cases.push_back({"header length past the end", bad, "header length"});
  }
  cases.push_back({"header not JSON", with_header("{\"0.weight\": [" + std::string(40, ' ')),
                   "not valid JSON"});
  {
    nlohmann::json h = parsed;
    h["0.weight"]["shape"] = {8, 3};
    cases.push_back({"shape mismatch", with_header(h.dump()), "'0.weight'"});
  }
  {
    nlohmann::json h = parsed;
    h["0.bias"]["data_offsets"] = {0, 1ull << 32};
    cases.push_back({"offsets out of range", with_header(h.dump()), "outside"});
  }
  {
    std::vector<char> bad = good;
    bad[bad.size() - 3] ^= 0x10;
    cases.push_back({"a flipped data bit", bad, "checksum mismatch"});
  }
  {
    nlohmann::json h = parsed;
    h["__metadata__"]["shardprop.run"] = "{\"restart\": 0";
    cases.push_back({"malformed run state", with_header(h.dump()), "shardprop.run"});
  }
  for (const auto& [what, bytes, message] : cases) {
    CAPTURE(what);
    write_bytes(f.dir / "bad.st", bytes);
    const Run run = run_cli(f.dir, {"train", "--resume", "bad.st", "--out", "c.st"});
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Contains("bad.st") && Contains(message));
    CHECK(lines_of(run.err).size() == 1);
    CHECK(read_bytes(f.dir / "c.st") == good);  // --out untouched
  }
}

namespace {

pid_t spawn_cli(const TempDir& dir, const Args& args) {
  std::vector<std::string> words{SHARDPROP_CLI_PATH};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.path().c_str());
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return pid;
}

}  // namespace

TEST_CASE("kill -9 at any moment leaves every file under a final name complete",
          "[cli][checkpoint][slow]") {
  TrainFixture f;
  // Wide layers and Adam make each checkpoint about 5 MB, so kills land inside writes too.
  const Args args{
      "train", "--data",    "train.csv", "--layers",           "600,600", "--epochs",
      "400",   "--lr",      "0.001",     "--optimizer",        "adam",    "--batch-size",
      "100",   "--out",     "m.st",      "--checkpoint-every", "1",       "--keep",
      "2",     "--threads", "1"};
  // A kill inside a write leaves its temporary file: hidden, named after the target and its
  // writer, never under a final name. They stay here, so the later runs write among them.
  const std::regex temporary(
      R"(\.m\.(st|epoch-\d{6}\.safetensors)\.tmp\.\d+@[A-Za-z0-9-]+\.[A-Za-z0-9]{6})");
  std::set<std::string> temporaries;
  int checked = 0;
  for (int attempt = 0; attempt < 12; ++attempt) {
    const pid_t pid = spawn_cli(f.dir, args);
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 37 * attempt));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    for (const std::string& name : directory_entries(f.dir.path())) {
      CAPTURE(attempt, name);
      if (name.find(".tmp.") != std::string::npos) {
        CHECK(std::regex_match(name, temporary));
        temporaries.insert(name);
        continue;
      }
      if (!name.ends_with(".st") && !name.ends_with(".safetensors")) continue;
      // Loading validates everything, the checksum of the tensor data included.
      CHECK_NOTHROW(shardprop::load_model(f.dir / name));
      ++checked;
    }
  }
  CHECK(checked > 0);
  // A run writing to the same place is not confused by them: it resumes from the newest
  // periodic checkpoint, --keep counts only real checkpoints, the temporaries are never read or
  // reused, and since their writers are gone, it removes them.
  std::vector<std::string> periodic;
  for (const std::string& name : directory_entries(f.dir.path())) {
    if (name.rfind("m.epoch-", 0) == 0) periodic.push_back(name);
  }
  REQUIRE(!periodic.empty());
  std::sort(periodic.begin(), periodic.end());
  const int last = std::stoi(periodic.back().substr(std::string("m.epoch-").size(), 6));
  // --checkpoint-every and --keep are output options, not recorded in the checkpoint: given
  // again, the resumed run writes epoch last + 1 and prunes what the kills left, whether or not
  // a kill fell between a write and its prune.
  const Run resumed =
      run_cli(f.dir, {"train", "--resume", periodic.back(), "--epochs", std::to_string(last + 2),
                      "--out", "m.st", "--checkpoint-every", "1", "--keep", "2", "--threads", "1"});
  CAPTURE(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK_NOTHROW(shardprop::load_model(f.dir / "m.st"));
  std::set<std::string> temporaries_after;
  int periodic_after = 0;
  for (const std::string& name : directory_entries(f.dir.path())) {
    if (name.find(".tmp.") != std::string::npos) temporaries_after.insert(name);
    if (name.rfind("m.epoch-", 0) == 0) ++periodic_after;
  }
  CHECK(temporaries_after.empty());
  CHECK(periodic_after == 2);  // --keep 2
}

TEST_CASE("restarts train from several initialisations and keeps the lowest validation loss",
          "[cli][restarts]") {
  TrainFixture f;
  const Run run = f.train({"--epochs", "2", "--restarts", "3", "--val-split", "0.25", "--out",
                           "best.st", "--lr", "0.05"});
  CAPTURE(run.out, run.err);
  REQUIRE(run.exit_code == 0);
  const std::regex restart_line(R"(^restart (\d)/3: validation loss (\d+\.\d+))");
  std::vector<double> losses;
  for (const std::string& line : lines_of(run.out)) {
    std::smatch m;
    if (std::regex_search(line, m, restart_line)) losses.push_back(std::stod(m[2]));
  }
  REQUIRE(losses.size() == 3);
  const auto best = std::min_element(losses.begin(), losses.end()) - losses.begin();
  CHECK_THAT(run.out, Contains("kept restart " + std::to_string(best + 1) + " of 3"));
  const auto metadata = shardprop::read_safetensors_metadata(f.dir / "best.st");
  const nlohmann::json state = nlohmann::json::parse(metadata.at("shardprop.run"));
  CHECK(state["best_restart"] == best);
  CHECK(state["restarts_done"] == true);
  CHECK_THAT(state["best_restart_loss"].get<double>(),
             Catch::Matchers::WithinAbs(losses[best], 1e-6));
  // The restarts really start from different weights: one restart alone is restart 1.
  const Run single =
      f.train({"--epochs", "2", "--val-split", "0.25", "--out", "single.st", "--lr", "0.05"});
  REQUIRE(single.exit_code == 0);
  CHECK(same_tensors(f.dir / "single.st", f.dir / "best.st") == (best == 0));
}

TEST_CASE("early stopping stops once the validation loss has not improved for PATIENCE epochs",
          "[cli][early-stopping]") {
  TempDir dir;
  // Labels independent of the features: the model can only overfit, so validation loss rises.
  std::string csv = "a,b,c,d,label\n";
  std::mt19937_64 bits(5);
  for (int r = 0; r < 200; ++r) {
    for (int c = 0; c < 4; ++c) csv += std::to_string(shardprop::test::uniform_pm1(bits)) + ",";
    csv += std::to_string(bits() % 2) + "\n";
  }
  write_text(dir / "noise.csv", csv);
  const int patience = 3;
  const Args args{"train", "--data",      "noise.csv", "--layers",     "64,64", "--lr",
                  "0.3",   "--val-split", "0.3",       "--batch-size", "8",     "--batch-norm"};
  Args stopping = args;
  stopping.insert(stopping.end(), {"--epochs", "300", "--early-stopping", std::to_string(patience),
                                   "--out", "stopped.st"});
  const Run run = run_cli(dir, stopping);
  CAPTURE(run.out, run.err);
  REQUIRE(run.exit_code == 0);
  const std::vector<double> val = column_of(run.out, "val loss");
  REQUIRE(val.size() < 300);
  REQUIRE(val.size() > static_cast<std::size_t>(patience));
  CHECK_THAT(run.out, Contains("early stopping after epoch " + std::to_string(val.size())));
  const auto best = std::min_element(val.begin(), val.end()) - val.begin();
  CHECK(static_cast<std::size_t>(best) + patience + 1 == val.size());
  CHECK_THAT(run.out,
             Contains("at epoch " + std::to_string(best + 1) + ", whose weights are kept"));
  // --out holds the best epoch's weights: those of the same run stopped there.
  Args at_best = args;
  at_best.insert(at_best.end(), {"--epochs", std::to_string(best + 1), "--out", "at_best.st"});
  REQUIRE(run_cli(dir, at_best).exit_code == 0);
  CHECK(model_bytes(dir / "stopped.st") == model_bytes(dir / "at_best.st"));
  SECTION("and a run resumed from a periodic checkpoint ends with the same file") {
    Args periodic = stopping;
    periodic.insert(periodic.end(), {"--checkpoint-every", "1", "--keep", "300"});
    REQUIRE(run_cli(dir, periodic).exit_code == 0);
    const Run resumed = run_cli(
        dir, {"train", "--resume", "stopped.epoch-000001.safetensors", "--out", "resumed.st"});
    CAPTURE(resumed.out, resumed.err);
    REQUIRE(resumed.exit_code == 0);
    CHECK(same_tensors(dir / "stopped.st", dir / "resumed.st"));
  }
  SECTION("info lists the latest weights --out keeps beside the best") {
    const Run info = run_cli(dir, {"info", "stopped.st"});
    CAPTURE(info.out, info.err);
    REQUIRE(info.exit_code == 0);
    CHECK_THAT(info.out, Contains("latest.* tensors: "));
    CHECK_THAT(info.out, Contains("latest.0.weight"));
    CHECK_THAT(info.out, !Contains("best.* tensors"));
  }
  SECTION("--help says which weights --out holds") {
    const Run help = run_cli(dir, {"train", "--help"});
    CHECK_THAT(help.out, Contains("--out then holds the weights of the epoch with the lowest "
                                  "validation loss"));
  }
  SECTION("and it needs a validation set") {
    const Run bad = run_cli(dir, {"train", "--data", "noise.csv", "--early-stopping", "2"});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Contains("--val"));
  }
}

TEST_CASE("a config file gives the same run as the same flags, and flags override it",
          "[cli][config]") {
  TrainFixture f;
  write_text(f.dir / "run.toml",
             "epochs = 3\nlr = 0.05\nmomentum = 0.9\nbatch-size = 10\nseed = 4\nlayers = [6, 5]\n"
             "optimizer = \"sgd\"\n");
  const Run config = run_cli(
      f.dir, {"train", "--data", "train.csv", "--config", "run.toml", "--out", "from_config.st"});
  CAPTURE(config.err);
  REQUIRE(config.exit_code == 0);
  const Run flags = f.train({"--epochs", "3", "--lr", "0.05", "--momentum", "0.9", "--batch-size",
                             "10", "--seed", "4", "--layers", "6,5", "--out", "from_flags.st"});
  REQUIRE(flags.exit_code == 0);
  CHECK(same_tensors(f.dir / "from_config.st", f.dir / "from_flags.st"));
  REQUIRE(run_cli(f.dir, {"train", "--data", "train.csv", "--config", "run.toml", "--seed", "5",
                          "--out", "override.st"})
              .exit_code == 0);
  CHECK_FALSE(same_tensors(f.dir / "from_config.st", f.dir / "override.st"));
  SECTION("an unknown key in the config file is a usage error naming its line") {
    write_text(f.dir / "bad.toml", "epochs = 2\nlearning_rat = 0.1\n");
    const Run bad = f.train({"--config", "bad.toml"});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Contains("bad.toml:2: unknown option 'learning_rat'"));
  }
  SECTION("flags take true/false, 1/0, yes/no, on/off, or the key alone") {
    write_text(f.dir / "flags.toml",
               "epochs = 2\nseed = 4\n[train]\nbatch-norm = true\nno-shuffle\nnesterov = on\n"
               "momentum = 0.5\nverbose = yes\nno-standardize = false\nno-header = 0\n"
               "quiet = off\n");
    const Run from_file = f.train({"--config", "flags.toml", "--out", "flags.st"});
    CAPTURE(from_file.err);
    REQUIRE(from_file.exit_code == 0);
    CHECK_THAT(from_file.out, Contains("grad norm"));  // verbose
    const Run given = f.train({"--epochs", "2", "--seed", "4", "--batch-norm", "--no-shuffle",
                               "--nesterov", "--momentum", "0.5", "--out", "flags2.st"});
    REQUIRE(given.exit_code == 0);
    CHECK(same_tensors(f.dir / "flags.st", f.dir / "flags2.st"));
    write_text(f.dir / "ini.ini",
               "[train]\nepochs=2\nseed=4\nbatch-norm=1\nno-shuffle=TRUE\n"
               "nesterov=Yes\nmomentum=0.5\n");
    REQUIRE(f.train({"--config", "ini.ini", "--out", "ini.st"}).exit_code == 0);
    CHECK(same_tensors(f.dir / "flags.st", f.dir / "ini.st"));
  }
  SECTION("a flag with another value is a usage error naming the key and the line") {
    write_text(f.dir / "bad.toml", "epochs = 2\n\n[train]\nbatch-norm = maybe\n");
    const Run bad = f.train({"--config", "bad.toml"});
    CHECK(bad.exit_code == 2);
    const std::vector<std::string> err = lines_of(bad.err);
    REQUIRE_FALSE(err.empty());
    CHECK(err[0] ==
          "shardprop: error: bad.toml:4: 'batch-norm' is a flag: true/false (or 1/0, yes/no, "
          "on/off), got 'maybe'");
  }
}

TEST_CASE("a non-finite loss stops training naming the epoch, the step and the learning rate",
          "[cli][numerics]") {
  TrainFixture f;
  REQUIRE(f.train({"--epochs", "1", "--out", "good.st"}).exit_code == 0);
  const std::vector<char> before = read_bytes(f.dir / "good.st");
  const Run run = f.train(
      {"--epochs", "5", "--lr", "1e30", "--loss", "mse", "--no-standardize", "--out", "good.st"});
  CAPTURE(run.out, run.err);
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.err, Contains("epoch ") && Contains("step ") && Contains("learning rate"));
  CHECK(read_bytes(f.dir / "good.st") == before);
}

TEST_CASE("loss auto reads labels as classes and numbers as a regression target", "[cli]") {
  TempDir dir;
  write_text(dir / "labels.csv", "x,y,kind\n0,1,cat\n1,0,dog\n0.5,0.5,cat\n1,1,dog\n");
  write_text(dir / "numbers.csv", "x,y,value\n0,1,0.25\n1,0,1.5\n0.5,0.5,-2.75\n1,1,3.125\n");
  const Run labels = run_cli(dir, {"train", "--data", "labels.csv", "--epochs", "1"});
  CAPTURE(labels.err);
  REQUIRE(labels.exit_code == 0);
  CHECK_THAT(labels.out, Contains("loss xent (auto"));
  const Run numbers = run_cli(dir, {"train", "--data", "numbers.csv", "--epochs", "1"});
  REQUIRE(numbers.exit_code == 0);
  CHECK_THAT(numbers.out, Contains("loss mse (auto"));
  CHECK_THAT(numbers.out, Contains("rmse"));
}

TEST_CASE("the metrics file has one JSON line per epoch, also after a resume", "[cli][metrics]") {
  TrainFixture f;
  REQUIRE(f.train({"--epochs", "4", "--checkpoint-every", "2", "--out", "m.st", "--metrics",
                   "log.jsonl"})
              .exit_code == 0);
  auto epochs_in = [&](const std::string& file) {
    std::vector<int> epochs;
    for (const std::string& line : lines_of(shardprop::test::read_text(f.dir / file))) {
      epochs.push_back(nlohmann::json::parse(line).at("epoch").get<int>());
    }
    return epochs;
  };
  CHECK(epochs_in("log.jsonl") == std::vector<int>{1, 2, 3, 4});
  std::filesystem::copy_file(f.dir / "log.jsonl", f.dir / "resumed.jsonl");
  REQUIRE(run_cli(f.dir,
                  {"train", "--resume", "m.epoch-000002.safetensors", "--metrics", "resumed.jsonl"})
              .exit_code == 0);
  // Epochs 3 and 4 are trained again: their old lines are replaced, not repeated.
  CHECK(epochs_in("resumed.jsonl") == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("contradictory options are usage errors with exit status 2", "[cli]") {
  TrainFixture f;
  using Row = std::tuple<Args, std::string>;
  const auto [args, message] = GENERATE(table<Args, std::string>({
      Row{{"--nesterov"}, "--nesterov"},
      Row{{"--restarts", "2", "--init", "train.csv"}, "--init"},
      Row{{"--checkpoint-every", "1"}, "--out"},
      Row{{"--spec", "dense(4) relu dense(2)", "--layers", "4"}, "--layers"},
      Row{{"--spec", "dense(4) relu dense(2)", "--batch-norm"}, "--batch-norm"},
      Row{{"--optimizer", "rmsprop"}, "--optimizer"},
  }));
  const Run run = f.train(args);
  CAPTURE(run.err);
  CHECK(run.exit_code == 2);
  CHECK_THAT(run.err, Contains(message));
}

TEST_CASE("a layer spec builds the stack it describes, with PyTorch's sequential tensor names",
          "[cli][spec]") {
  TrainFixture f;
  const Run run = f.train({"--spec", "dense(6) bn relu dropout(0.25) dense(4) tanh dense(2)",
                           "--epochs", "2", "--out", "s.st"});
  CAPTURE(run.out, run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Contains("dense(6) bn relu dropout(0.25) dense(4) tanh dense(2)"));
  const shardprop::Model model = shardprop::load_model(f.dir / "s.st");
  std::vector<std::string> names;
  for (const shardprop::TensorInfo& t : model.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{
                     "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                     "1.num_batches_tracked", "4.weight", "4.bias", "6.weight", "6.bias"});
  SECTION("a spec whose output width does not fit the data names both") {
    const Run bad = f.train({"--spec", "dense(6) relu dense(3)", "--epochs", "1"});
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.err, Contains("3 outputs") && Contains("needs 2"));
  }
  SECTION("a syntax error names its column") {
    const Run bad = f.train({"--spec", "dense(6) rleu dense(2)", "--epochs", "1"});
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.err, Contains("column 10") && Contains("rleu"));
  }
}

TEST_CASE(
    "the dropout option puts a dropout layer after each hidden activation and changes training",
    "[cli][dropout]") {
  TrainFixture f;
  REQUIRE(f.train({"--layers", "8,8", "--dropout", "0.3", "--epochs", "2", "--out", "d.st"})
              .exit_code == 0);
  REQUIRE(f.train({"--layers", "8,8", "--epochs", "2", "--out", "plain.st"}).exit_code == 0);
  const shardprop::Model model = shardprop::load_model(f.dir / "d.st");
  CHECK(shardprop::format_layers(model.spec().layers) ==
        "dense(8) relu dropout(0.3) dense(8) relu dropout(0.3) dense(2)");
  const shardprop::Model plain = shardprop::load_model(f.dir / "plain.st");
  REQUIRE(model.parameters().size() == plain.parameters().size());
  CHECK(std::memcmp(model.parameters().data(), plain.parameters().data(),
                    model.parameters().size_bytes()) != 0);
  SECTION("and results still do not depend on the thread count") {
    for (const char* threads : {"1", "2"}) {
      REQUIRE(f.train({"--layers", "8,8", "--dropout", "0.3", "--epochs", "2", "--shards", "3",
                       "--threads", threads, "--out", std::string("t") + threads + ".st"})
                  .exit_code == 0);
    }
    CHECK(read_bytes(f.dir / "t1.st") == read_bytes(f.dir / "t2.st"));
  }
}

TEST_CASE("without validation the epoch line shows running metrics, and --eval-train adds a pass",
          "[cli]") {
  TrainFixture f;
  const Run running = f.train({"--epochs", "3", "--out", "running.st"});
  const Run evaluated = f.train({"--epochs", "3", "--eval-train", "--out", "evaluated.st"});
  REQUIRE(running.exit_code == 0);
  REQUIRE(evaluated.exit_code == 0);
  // The extra pass only measures: the same weights, the same training losses.
  CHECK(same_tensors(f.dir / "running.st", f.dir / "evaluated.st"));
  CHECK(column_of(running.out, "loss") == column_of(evaluated.out, "loss"));
  // Running accuracy is taken while the weights change; the pass measures the epoch's end.
  CHECK(column_of(running.out, "accuracy") != column_of(evaluated.out, "accuracy"));

  SECTION("a checkpoint that does not record --eval-train resumes as one that evaluated") {
    std::vector<char> bytes = read_bytes(f.dir / "evaluated.st");
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    nlohmann::json header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + n);
    nlohmann::json options =
        nlohmann::json::parse(header["__metadata__"]["shardprop.train_options"].get<std::string>());
    REQUIRE(options.erase("eval-train") == 1);
    header["__metadata__"]["shardprop.train_options"] = options.dump();
    std::string text = header.dump();
    REQUIRE(text.size() <= n);
    text.append(n - text.size(), ' ');
    std::copy(text.begin(), text.end(), bytes.begin() + 8);
    write_bytes(f.dir / "evaluated.st", bytes);
    const Run resumed = run_cli(f.dir, {"train", "--resume", "evaluated.st", "--epochs", "4"});
    CHECK(resumed.exit_code == 0);
    CHECK_THAT(resumed.err, !Contains("does not record"));
  }
}
