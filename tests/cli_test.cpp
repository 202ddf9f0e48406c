// The `shardprop` executable, run as a user would: training output, --out / --init, one-line
// errors that leave --out untouched, and byte-identical results for equal seeds and any thread
// count. Each run is a separate process with stdout and stderr captured to files.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "base/rng.hpp"
#include "cli_runner.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/model.hpp"
#include "shardprop/version.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
using shardprop::Activation;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::test::Args;
using shardprop::test::directory_entries;
using shardprop::test::lines_of;
using shardprop::test::read_bytes;
using shardprop::test::read_text;
using shardprop::test::Run;
using shardprop::test::run_cli;
using shardprop::test::separable_csv;
using shardprop::test::TempDir;
using shardprop::test::write_bytes;
using shardprop::test::write_text;

// The model `shardprop train` builds for 2 features, 2 classes and --layers LAYERS.
ModelSpec cli_spec(std::vector<int> layers, int inputs = 2) {
  return ModelSpec::mlp(inputs, layers, 2, Activation::relu, Loss::xent);
}

Model load_model(const ModelSpec& spec, const std::filesystem::path& path) {
  Model model(spec);
  shardprop::load_safetensors(model, path);
  return model;
}

bool same_tensors(const Model& a, const Model& b) {
  return a.parameters().size() == b.parameters().size() &&
         std::memcmp(a.parameters().data(), b.parameters().data(), a.parameters().size_bytes()) ==
             0;
}

// A fixture directory with a training CSV (train.csv, 256 rows) and the common options for a
// quick run. CLI11 rejects an option given twice, so train() adds a default only for the
// options that `extra` does not set.
struct CliFixture {
  TempDir dir;
  CliFixture() { write_text(dir / "train.csv", separable_csv(11, 256)); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  Args train(const Args& extra) const {
    return shardprop::test::train_args(
        {"--data", "train.csv", "--layers", "8", "--batch-size", "16", "--lr", "0.3"}, extra);
  }
};

}  // namespace

TEST_CASE("an empty --layers trains a model without hidden layers, and a zero width is refused",
          "[cli]") {
  CliFixture f;
  const Run linear =
      run_cli(f.dir, f.train({"--layers", "", "--epochs", "3", "--out", f.path("m.st")}));
  CAPTURE(linear.out, linear.err);
  REQUIRE(linear.exit_code == 0);
  CHECK_THAT(linear.out, Contains("model 2-2,"));
  const Model linear_model = load_model(cli_spec({}), f.path("m.st"));  // throws on other shapes
  CHECK(linear_model.tensors().size() == 2);                            // one weight, one bias
  const Run zero = run_cli(f.dir, f.train({"--layers", "0"}));
  CHECK(zero.exit_code == 2);
  CHECK_THAT(zero.err, Contains("--layers: must be a number >= 1, got '0'"));
}

TEST_CASE("train prints one line per epoch with loss and accuracy and writes --out", "[cli]") {
  CliFixture f;
  const Run run =
      run_cli(f.dir, f.train({"--epochs", "6", "--seed", "3", "--out", f.path("m.st")}));
  CAPTURE(run.out, run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.err.empty());

  const std::regex epoch_line(R"(^epoch +(\d+)/6 +loss (\d+\.\d+) +accuracy +(\d+\.\d+)%.*)");
  std::vector<double> losses, accuracies;
  for (const std::string& line : lines_of(run.out)) {
    std::smatch m;
    if (!std::regex_match(line, m, epoch_line)) {
      CHECK_THAT(line, !StartsWith("epoch"));
      continue;
    }
    CHECK(std::stoi(m[1]) == static_cast<int>(losses.size()) + 1);
    losses.push_back(std::stod(m[2]));
    accuracies.push_back(std::stod(m[3]));
  }
  REQUIRE(losses.size() == 6);
  CHECK(losses.back() < losses.front());  // it learns
  CHECK(accuracies.back() >= 90.0);       // on linearly separable data
  CHECK_THAT(run.out, Contains("wrote " + f.path("m.st")));

  const Model trained = load_model(cli_spec({8}), f.path("m.st"));
  Model initial(cli_spec({8}));
  initial.initialize(3);
  CHECK_FALSE(same_tensors(trained, initial));
  const auto metadata = shardprop::read_safetensors_metadata(f.path("m.st"));
  CHECK(metadata.at("shardprop.epochs") == "6");
  CHECK(metadata.at("shardprop.seed") == "3");
  CHECK(metadata.count("shardprop.model") == 1);

  SECTION("mse reports rmse instead of accuracy") {
    const Run mse = run_cli(f.dir, f.train({"--epochs", "2", "--loss", "mse"}));
    REQUIRE(mse.exit_code == 0);
    int epochs = 0;
    for (const std::string& line : lines_of(mse.out)) {
      if (line.rfind("epoch", 0) != 0) continue;
      ++epochs;
      CHECK_THAT(line, Contains("loss ") && Contains("rmse "));
    }
    CHECK(epochs == 2);
  }
}

TEST_CASE("train --epochs 0 writes the initialised model, and --init starts from given weights",
          "[cli]") {
  CliFixture f;
  const Run init =
      run_cli(f.dir, f.train({"--epochs", "0", "--seed", "42", "--out", f.path("a.st")}));
  CAPTURE(init.out, init.err);
  REQUIRE(init.exit_code == 0);
  CHECK_THAT(init.out, !Contains("epoch "));
  Model expected(cli_spec({8}));
  expected.initialize(42);
  const Model a = load_model(cli_spec({8}), f.path("a.st"));
  CHECK(same_tensors(a, expected));
  CHECK(shardprop::read_safetensors_metadata(f.path("a.st")).at("shardprop.epochs") == "0");

  SECTION("--init A --epochs 0 --out B copies A's tensors bitwise, whatever the seed") {
    const Run copy = run_cli(f.dir, f.train({"--epochs", "0", "--seed", "7", "--init",
                                             f.path("a.st"), "--out", f.path("b.st")}));
    CAPTURE(copy.out, copy.err);
    REQUIRE(copy.exit_code == 0);
    CHECK(same_tensors(load_model(cli_spec({8}), f.path("b.st")), a));
  }
  SECTION("weights written by the library load via --init and come back unchanged") {
    Model custom(cli_spec({8}));
    custom.initialize(1234);
    for (float& p : custom.parameters()) p *= 0.5f;  // not any seed's initialisation
    shardprop::save_safetensors(custom, f.path("custom.st"));
    const Run copy = run_cli(
        f.dir, f.train({"--epochs", "0", "--init", f.path("custom.st"), "--out", f.path("b.st")}));
    REQUIRE(copy.exit_code == 0);
    CHECK(same_tensors(load_model(cli_spec({8}), f.path("b.st")), custom));
  }
  SECTION("training from --init A equals training from the seed A was initialised with") {
    const Run from_init = run_cli(f.dir, f.train({"--epochs", "2", "--seed", "42", "--init",
                                                  f.path("a.st"), "--out", f.path("c.st")}));
    const Run from_seed =
        run_cli(f.dir, f.train({"--epochs", "2", "--seed", "42", "--out", f.path("d.st")}));
    REQUIRE(from_init.exit_code == 0);
    REQUIRE(from_seed.exit_code == 0);
    const Model c = load_model(cli_spec({8}), f.path("c.st"));
    CHECK(same_tensors(c, load_model(cli_spec({8}), f.path("d.st"))));
    CHECK_FALSE(same_tensors(c, a));  // and it did train
  }
}

TEST_CASE("train --init with weights of another architecture fails naming the tensor", "[cli]") {
  CliFixture f;
  REQUIRE(run_cli(f.dir, f.train({"--epochs", "0", "--out", f.path("a.st")})).exit_code == 0);
  write_text(f.dir / "three.csv", "x1,x2,x3,label\n0,0,0,0\n1,1,1,1\n");
  // Generators outlive this run of the test case (and its TempDir): relative names only.
  const auto [description, args, tensor] = GENERATE(table<std::string, Args, std::string>({
      {"narrower hidden layer", Args{"--layers", "4"},
       "'0.weight': shape [8,2] does not match the model's [4,2]"},
      {"an extra hidden layer", Args{"--layers", "8,8"},
       "'2.weight': shape [2,8] does not match the model's [8,8]"},
      {"three features instead of two", Args{"--layers", "8", "--data", "three.csv"},
       "'0.weight': shape [8,2] does not match the model's [8,3]"},
  }));
  CAPTURE(description);
  const std::vector<char> old_bytes{'k', 'e', 'e', 'p', '\0', '\n'};
  write_bytes(f.dir / "out.st", old_bytes);
  Args all = args;
  all.insert(all.end(), {"--epochs", "1", "--init", f.path("a.st"), "--out", f.path("out.st")});
  const Run run = run_cli(f.dir, f.train(all));
  CAPTURE(run.out, run.err);
  CHECK(run.exit_code != 0);
  const std::vector<std::string> err = lines_of(run.err);
  REQUIRE(err.size() == 1);
  CHECK_THAT(err[0], StartsWith("shardprop: error: " + f.path("a.st") + ": tensor "));
  CHECK_THAT(err[0], Contains(tensor));
  CHECK(read_bytes(f.dir / "out.st") == old_bytes);
}

TEST_CASE("bad options and bad input exit non-zero with a one-line message and leave --out alone",
          "[cli]") {
  CliFixture f;
  write_text(f.dir / "bad.csv", "x1,x2,label\n0.5,0.5,1\n-0.5,-0.5,0\n0.1,abc,1\n");
  write_text(f.dir / "short.csv", "x1,x2,label\n0.5,0.5,1\n-0.5,0\n");
  write_text(f.dir / "outside.csv", "x1,x2,label\n0.5,0.5,1\n-0.5,-0.5,2\n");
  // (description, options, what the first line of stderr must contain, exit status: 2 for a
  // usage error, 1 for bad input). The CLI runs in the
  // fixture's directory; the generator outlives this run's TempDir, so relative names only.
  const auto [description, options, expected, status] =
      GENERATE(table<std::string, Args, std::string, int>({
          {"unknown --activation", Args{"--activation", "softplus"}, "--activation: softplus", 2},
          {"unknown --loss", Args{"--loss", "hinge"}, "--loss: hinge", 2},
          {"--batch-size 0", Args{"--batch-size", "0"},
           "--batch-size: must be a number >= 1, got '0'", 2},
          {"--layers with a zero width", Args{"--layers", "8,0"},
           "--layers: must be a number >= 1, got '0'", 2},
          {"an unknown option", Args{"--bogus"}, "--bogus", 2},
          {"a missing --data file", Args{"--data", "missing.csv"}, "missing.csv", 2},
          {"a missing --init file", Args{"--init", "missing.st"}, "missing.st", 2},
          {"a malformed CSV field", Args{"--data", "bad.csv"},
           "shardprop: error: bad.csv:4:5 (column 2 'x2'): 'abc' is not a number", 1},
          {"a short CSV row", Args{"--data", "short.csv"},
           "shardprop: error: short.csv:3: expected 3 fields, found 2", 1},
          {"an unknown --target", Args{"--target", "colour"}, "no column named 'colour'", 1},
          {"a bce target outside [0, 1]", Args{"--data", "outside.csv", "--loss", "bce"},
           "outside.csv: target of row 1 is 2.000000; bce needs targets in [0, 1]", 1},
          {"--shards larger than --batch-size (16)", Args{"--shards", "17"},
           "shards (17) exceeds the batch size (16)", 1},
          {"--init with a file that is not safetensors", Args{"--init", "train.csv"},
           "shardprop: error: train.csv: header length", 1},
          {"--init with --resume", Args{"--init", "train.csv", "--resume", "train.csv"},
           "shardprop: error: --init excludes --resume", 2},
          {"an empty --spec", Args{"--spec", ""}, "shardprop: error: --spec is empty", 2},
          {"a blank --spec", Args{"--spec", " \t "}, "shardprop: error: --spec is empty", 2},
          {"--dropout outside [0, 1)", Args{"--dropout", "1"}, "shardprop: error: --dropout", 2},
      }));
  CAPTURE(description);
  const std::vector<char> old_bytes{'o', 'l', 'd', '\0', '\xff', '\n'};
  write_bytes(f.dir / "out.st", old_bytes);
  const auto entries_before = directory_entries(f.dir.path());

  Args args = options;
  args.insert(args.end(), {"--epochs", "1", "--out", f.path("out.st")});
  const Run run = run_cli(f.dir, f.train(args));
  CAPTURE(run.out, run.err);
  CHECK(run.exit_code == status);
  const std::vector<std::string> err = lines_of(run.err);
  REQUIRE_FALSE(err.empty());
  CHECK_THAT(err[0], StartsWith("shardprop: error: ") && Contains(expected));
  // One line; a usage error adds one hint line.
  if (status == 2) {
    CHECK(err.size() == 2);
    CHECK(err.back() == "Run 'shardprop train --help' for the options.");
  } else {
    CHECK(err.size() == 1);
  }
  CHECK_THAT(run.out, !Contains("wrote"));
  CHECK(read_bytes(f.dir / "out.st") == old_bytes);
  CHECK(directory_entries(f.dir.path()) == entries_before);  // no temporary files either
}

TEST_CASE(
    "a zero --batch-size or layer width is rejected with a message that states the valid "
    "values",
    "[cli]") {
  // Regression: CLI::PositiveNumber printed its bounds as "0.000000" and a 309-digit number:
  // "--batch-size: Value 0 not in range 0.000000 to 17976931348623...".
  CliFixture f;
  const auto [option, value] = GENERATE(table<std::string, std::string>({
      {"--batch-size", "0"},
      {"--layers", "0"},
  }));
  CAPTURE(option);
  const Run run = run_cli(f.dir, f.train({"--epochs", "1", option, value}));
  CAPTURE(run.err);
  CHECK(run.exit_code != 0);
  const std::vector<std::string> err = lines_of(run.err);
  REQUIRE_FALSE(err.empty());
  CHECK_THAT(err[0], StartsWith("shardprop: error: " + option));
  CHECK_THAT(err[0], !Contains("range 0.000000"));  // 0 is what was rejected
  CHECK(err[0].size() < 120);
}

TEST_CASE("train with the same seed and options twice gives byte-identical output files",
          "[cli][determinism]") {
  CliFixture f;
  const Args options{"--epochs", "3", "--seed", "5", "--shards", "2"};
  Args first = f.train(options);
  first.insert(first.end(), {"--out", f.path("first.st")});
  Args second = f.train(options);
  second.insert(second.end(), {"--out", f.path("second.st")});
  REQUIRE(run_cli(f.dir, first).exit_code == 0);
  REQUIRE(run_cli(f.dir, second).exit_code == 0);
  CHECK(read_bytes(f.dir / "first.st") == read_bytes(f.dir / "second.st"));

  SECTION("and a different seed gives a different file") {
    REQUIRE(run_cli(f.dir, f.train({"--epochs", "3", "--seed", "6", "--shards", "2", "--out",
                                    f.path("other.st")}))
                .exit_code == 0);
    CHECK(read_bytes(f.dir / "other.st") != read_bytes(f.dir / "first.st"));
  }
}

TEST_CASE(
    "train gives byte-identical output files for --threads 1 and --threads 2 at fixed "
    "--shards",
    "[cli][determinism]") {
  CliFixture f;
  const std::string shards = GENERATE(as<std::string>{}, "2", "4", "16");
  CAPTURE(shards);
  auto train_with = [&](const std::string& threads, const std::string& out) {
    const Run run = run_cli(f.dir, f.train({"--epochs", "3", "--seed", "9", "--shards", shards,
                                            "--threads", threads, "--out", f.path(out)}));
    CAPTURE(run.err);
    REQUIRE(run.exit_code == 0);
  };
  train_with("1", "one.st");
  train_with("2", "two.st");
  CHECK(read_bytes(f.dir / "one.st") == read_bytes(f.dir / "two.st"));
}

TEST_CASE("train --verbose says when OpenBLAS runs kernels narrower than the CPU's",
          "[cli][blas]") {
  CliFixture f;
  const Args args = f.train({"--epochs", "1", "--verbose"});
  SECTION("the note is printed exactly when the library finds one") {
    const Run run = run_cli(f.dir, args);
    REQUIRE(run.exit_code == 0);
    const std::string note = shardprop::blas_kernel_note();
    CAPTURE(note, shardprop::blas_core_name());
    if (note.empty()) {
      CHECK_THAT(run.out, !Contains("note: OpenBLAS"));
    } else {
      CHECK_THAT(run.out, Contains("note: " + note));
    }
    // Chosen by OpenBLAS itself, the note names the setting that selects the CPU's widest
    // kernels; with it set, there is nothing left to note.
    const char* set = std::getenv("OPENBLAS_CORETYPE");
    const std::string key = "OPENBLAS_CORETYPE=";
    if (!note.empty() && (set == nullptr || *set == 0)) {
      const std::size_t at = note.find(key);
      REQUIRE(at != std::string::npos);
      const std::string core = note.substr(at + key.size(), note.find(' ', at) - at - key.size());
      ::setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
      const Run suggested = run_cli(f.dir, args);
      ::unsetenv("OPENBLAS_CORETYPE");
      CAPTURE(core, suggested.out);
      REQUIRE(suggested.exit_code == 0);
      CHECK_THAT(suggested.out, !Contains("note: OpenBLAS"));
    }
  }
#if defined(__x86_64__)
  SECTION("SSE kernels forced on an AVX CPU are named, with the setting that forced them") {
    if (!__builtin_cpu_supports("avx")) {
      WARN("this CPU has no AVX: nothing narrower to force");
      return;
    }
    const char* before = std::getenv("OPENBLAS_CORETYPE");
    const std::string saved = before != nullptr ? before : "";
    ::setenv("OPENBLAS_CORETYPE", "Nehalem", 1);
    const Run run = run_cli(f.dir, args);
    const Run quiet = run_cli(f.dir, f.train({"--epochs", "1"}));
    if (before != nullptr) {
      ::setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
    } else {
      ::unsetenv("OPENBLAS_CORETYPE");
    }
    CAPTURE(run.out, run.err);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Contains("note: OpenBLAS runs its Nehalem kernels (SSE) on a CPU with") &&
                            Contains("because OPENBLAS_CORETYPE=Nehalem is set"));
    CHECK_THAT(quiet.out, !Contains("note: OpenBLAS"));
  }
#endif
}

TEST_CASE("train --no-shuffle is accepted and trains on minibatches in file order", "[cli]") {
  CliFixture f;
  const Run first =
      run_cli(f.dir, f.train({"--epochs", "2", "--no-shuffle", "--out", f.path("a.st")}));
  CAPTURE(first.err);
  REQUIRE(first.exit_code == 0);
  REQUIRE(run_cli(f.dir, f.train({"--epochs", "2", "--no-shuffle", "--out", f.path("b.st")}))
              .exit_code == 0);
  REQUIRE(run_cli(f.dir, f.train({"--epochs", "2", "--out", f.path("shuffled.st")})).exit_code ==
          0);
  CHECK(read_bytes(f.dir / "a.st") == read_bytes(f.dir / "b.st"));
  // Batches of 16 from 256 rows: file order and a shuffled order give different updates.
  CHECK(read_bytes(f.dir / "a.st") != read_bytes(f.dir / "shuffled.st"));
}

TEST_CASE("shardprop --help and --version exit 0 and describe the program", "[cli]") {
  TempDir dir;
  SECTION("shardprop --help lists the train subcommand and names the program") {
    const Run run = run_cli(dir, {"--help"});
    CHECK(run.exit_code == 0);
    CHECK_THAT(run.out, Contains("train"));
    CHECK_THAT(run.out, Contains("Usage: shardprop [OPTIONS] SUBCOMMAND"));
  }
  SECTION("shardprop train --help lists the options") {
    const Run run = run_cli(dir, {"train", "--help"});
    CHECK(run.exit_code == 0);
    CHECK_THAT(run.out, Contains("Usage: shardprop train [OPTIONS]"));
    CHECK_THAT(run.out, Contains("with --resume the default is the resumed file"));
    for (const char* option : {"--data", "--out", "--init", "--threads", "--shards", "--no-shuffle",
                               "-q,--quiet", "-v,--verbose"}) {
      CHECK_THAT(run.out, Contains(option));
    }
  }
  SECTION("shardprop --version prints the library version") {
    const Run run = run_cli(dir, {"--version"});
    CHECK(run.exit_code == 0);
    CHECK_THAT(run.out, Contains(shardprop::version()));
  }
  SECTION("no subcommand is a usage error in the one-line format") {
    const Run run = run_cli(dir, {});
    CHECK(run.exit_code == 2);
    const std::vector<std::string> err = lines_of(run.err);
    REQUIRE(err.size() == 2);
    CHECK_THAT(err[0], StartsWith("shardprop: error: "));
    CHECK(err[1] == "Run 'shardprop --help' for the options.");
  }
}

TEST_CASE("train --batch-norm writes BatchNorm1d tensors that --init accepts", "[cli][batchnorm]") {
  CliFixture f;
  const Run run = run_cli(f.dir, f.train({"--layers", "8,4", "--batch-norm", "--epochs", "3",
                                          "--seed", "2", "--out", f.path("bn.st")}));
  CAPTURE(run.out, run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Contains("batch norm"));

  // nn.Sequential(Linear, BatchNorm1d, ReLU, Linear, BatchNorm1d, ReLU, Linear).
  const ModelSpec spec = ModelSpec::mlp(2, std::vector<int>{8, 4}, 2, Activation::relu, Loss::xent,
                                        /*batch_norm=*/true);
  const Model trained = load_model(spec, f.dir / "bn.st");
  std::vector<std::string> names;
  for (const shardprop::TensorInfo& t : trained.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                          "1.running_mean", "1.running_var",
                                          "1.num_batches_tracked", "3.weight", "3.bias", "4.weight",
                                          "4.bias", "4.running_mean", "4.running_var",
                                          "4.num_batches_tracked", "6.weight", "6.bias"});
  // 256 rows in batches of 16, 3 epochs: 48 steps, each updating the running statistics.
  CHECK(trained.counters()[0] == 48);

  SECTION("--init starts from it, running statistics and counters included") {
    const Run copy =
        run_cli(f.dir, f.train({"--layers", "8,4", "--batch-norm", "--epochs", "0", "--init",
                                f.path("bn.st"), "--out", f.path("copy.st")}));
    REQUIRE(copy.exit_code == 0);
    const Model copied = load_model(spec, f.dir / "copy.st");
    CHECK(same_tensors(trained, copied));
    CHECK(copied.counters()[0] == 48);
  }
  SECTION("a model without batch norm rejects it, naming the tensor") {
    const Run plain = run_cli(f.dir, f.train({"--layers", "8,4", "--epochs", "0", "--init",
                                              f.path("bn.st"), "--out", f.path("plain.st")}));
    CHECK(plain.exit_code == 1);
    CHECK_THAT(plain.err, Contains("tensor '2.weight'"));
    CHECK_FALSE(std::filesystem::exists(f.dir / "plain.st"));
  }
}

TEST_CASE("train --stream reads the file in blocks and learns what loading it learns",
          "[cli][stream]") {
  CliFixture f;
  // Same row order (no shuffle) and no standardization: the streamed run must give the bytes
  // of the in-memory run.
  const Args common{"--epochs", "2", "--no-shuffle", "--no-standardize", "--seed", "4"};
  Args memory = common, streamed = common;
  memory.insert(memory.end(), {"--out", f.path("memory.st")});
  streamed.insert(streamed.end(), {"--stream", "--out", f.path("stream.st")});
  const Run a = run_cli(f.dir, f.train(memory));
  const Run b = run_cli(f.dir, f.train(streamed));
  CAPTURE(a.out, a.err, b.out, b.err);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  CHECK_THAT(b.out, Contains("streamed"));
  CHECK(same_tensors(load_model(cli_spec({8}), f.dir / "memory.st"),
                     load_model(cli_spec({8}), f.dir / "stream.st")));

  SECTION("streaming chooses itself above --stream-above-mb") {
    const Run auto_stream =
        run_cli(f.dir, f.train({"--epochs", "1", "--stream-above-mb", "0.001"}));
    CHECK(auto_stream.exit_code == 0);
    CHECK_THAT(auto_stream.out, Contains("streamed"));
  }
  SECTION("--val-split holds out a seeded share of the streamed rows") {
    const Run split = run_cli(f.dir, f.train({"--epochs", "2", "--stream", "--val-split", "0.25",
                                              "--metrics", f.path("split.jsonl")}));
    CAPTURE(split.out, split.err);
    CHECK(split.exit_code == 0);
    CHECK_THAT(split.out, Contains("streamed") && Contains("val accuracy"));
    // Every epoch has a validation loss (null would mean no validation set).
    const std::string metrics = read_text(f.dir / "split.jsonl");
    CHECK_THAT(metrics, Contains("\"val_loss\":") && !Contains("\"val_loss\":null"));
  }
  SECTION("--cache keeps data in memory: a usage error with --stream") {
    const Run cache = run_cli(f.dir, f.train({"--epochs", "1", "--stream", "--cache"}));
    CHECK(cache.exit_code == 2);
    CHECK_THAT(cache.err, StartsWith("shardprop: error: --cache") && Contains("--stream"));
    const Run cache_dir =
        run_cli(f.dir, f.train({"--epochs", "1", "--stream", "--cache-dir", f.path("cache")}));
    CHECK(cache_dir.exit_code == 2);
  }
  SECTION("and when the file's size chooses streaming, the message says why") {
    const Run split = run_cli(
        f.dir, f.train({"--epochs", "1", "--stream-above-mb", "0.001", "--val-split", "0.2"}));
    CHECK(split.exit_code == 0);
    const Run cache =
        run_cli(f.dir, f.train({"--epochs", "1", "--stream-above-mb", "0.001", "--cache"}));
    CHECK(cache.exit_code == 2);
    CHECK_THAT(cache.err, Contains("--stream-above-mb") && Contains("--cache"));
  }
}

TEST_CASE("train --cache parses once and reuses the parsed copy", "[cli][cache]") {
  CliFixture f;
  const Args args{"--epochs", "1", "--cache", "--out", f.path("a.st")};
  REQUIRE(run_cli(f.dir, f.train(args)).exit_code == 0);
  int caches = 0;
  for (const auto& entry : std::filesystem::directory_iterator(f.dir.path())) {
    caches += entry.path().extension() == ".spcache" ? 1 : 0;
  }
  CHECK(caches == 1);
  const Args again{"--epochs", "1", "--cache", "--out", f.path("b.st")};
  REQUIRE(run_cli(f.dir, f.train(again)).exit_code == 0);
  CHECK(same_tensors(load_model(cli_spec({8}), f.dir / "a.st"),
                     load_model(cli_spec({8}), f.dir / "b.st")));
}

TEST_CASE("train reports validation from a file with its own label order or from a split",
          "[cli][csv]") {
  CliFixture f;
  // Labels as words; the validation file lists them in another order and lacks one.
  write_text(f.dir / "words.csv", "x,label\n-2,low\n-1,low\n0,mid\n1,high\n2,high\n-1.5,low\n");
  write_text(f.dir / "words-val.csv", "x,label\n2.5,high\n-2.5,low\n");
  const Run run =
      run_cli(f.dir, {"train", "--data", "words.csv", "--val", "words-val.csv", "--layers", "4",
                      "--epochs", "2", "--batch-size", "2", "--out", f.path("w.st")});
  CAPTURE(run.out, run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.out, Contains("val loss") && Contains("val accuracy"));
  const auto metadata = shardprop::read_safetensors_metadata(f.dir / "w.st");
  CHECK(metadata.at("shardprop.classes") == R"(["high","low","mid"])");
  CHECK(metadata.count("shardprop.standardization") == 1);

  SECTION("a validation label the training data never had is an error naming it") {
    write_text(f.dir / "words-bad.csv", "x,label\n0,extreme\n");
    const Run bad =
        run_cli(f.dir, {"train", "--data", "words.csv", "--val", "words-bad.csv", "--epochs", "1"});
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.err, Contains("'extreme'"));
  }
  SECTION("--val-split holds out rows of --data, by the seeded hash of each row's number") {
    const Run split = run_cli(f.dir, f.train({"--epochs", "1", "--val-split", "0.25"}));
    CHECK(split.exit_code == 0);
    // Row i is held out when its hash falls in the lowest quarter of the range (the default seed
    // is 1): what any number of ranks computes from the row numbers alone.
    std::int64_t kept = 0;
    for (std::uint64_t row = 0; row < 256; ++row) {
      kept += shardprop::detail::random_bits(1, shardprop::detail::RngPurpose::split, 0, row) >=
              (std::uint64_t{1} << 62);
    }
    CHECK(kept > 160);
    CHECK(kept < 224);
    CHECK_THAT(split.out, Contains(std::to_string(kept) + " rows") && Contains("val accuracy"));
  }
}

TEST_CASE("verbose marks an epoch improved only when there is a validation loss to improve",
          "[cli][progress]") {
  CliFixture f;
  const Run train_only = run_cli(f.dir, f.train({"--epochs", "3", "--verbose"}));
  REQUIRE(train_only.exit_code == 0);
  CHECK_THAT(train_only.out, Contains("grad norm") && !Contains("improved"));
  const Run validated =
      run_cli(f.dir, f.train({"--epochs", "3", "--verbose", "--val-split", "0.25"}));
  REQUIRE(validated.exit_code == 0);
  const std::vector<std::string> lines = lines_of(validated.out);
  const auto first_epoch = std::find_if(lines.begin(), lines.end(), [](const std::string& line) {
    return line.rfind("epoch    1/3", 0) == 0;
  });
  REQUIRE(first_epoch != lines.end());
  CHECK_THAT(*first_epoch, EndsWith("  improved"));  // the first validation loss always is
}

TEST_CASE("a checkpoint records float settings and statistics as their shortest decimals",
          "[cli]") {
  // Regression: "lr":0.30000001192092896, the float's exact value written as a double.
  CliFixture f;
  REQUIRE(run_cli(f.dir, f.train({"--epochs", "1", "--momentum", "0.9", "--weight-decay", "1e-05",
                                  "--out", f.path("m.st")}))
              .exit_code == 0);
  const auto metadata = shardprop::read_safetensors_metadata(f.dir / "m.st");
  const std::string options = metadata.at("shardprop.train_options");
  CHECK_THAT(options, Contains("\"lr\":0.3,") && Contains("\"momentum\":0.9,") &&
                          Contains("\"weight-decay\":1e-05"));
  // Every standardization number is a float's shortest form: at most 9 significant digits.
  const std::string statistics = metadata.at("shardprop.standardization");
  const std::regex long_number(R"([0-9]{10,})");
  CHECK_FALSE(std::regex_search(statistics, long_number));
  // And the run resumes with them: the stored settings equal the flags' floats.
  REQUIRE(run_cli(f.dir, {"train", "--resume", "m.st", "--epochs", "2", "--lr", "0.3"}).exit_code ==
          0);
}

TEST_CASE("info describes a weights file and rejects a damaged one", "[cli][info]") {
  CliFixture f;
  REQUIRE(run_cli(f.dir, f.train({"--layers", "8,4", "--batch-norm", "--epochs", "1", "--out",
                                  f.path("m.st")}))
              .exit_code == 0);
  const Run info = run_cli(f.dir, {"info", "m.st"});
  CAPTURE(info.out, info.err);
  REQUIRE(info.exit_code == 0);
  CHECK_THAT(info.out, Contains("2 inputs -> dense(8) bn relu dense(4) bn relu dense(2) -> 2 "
                                "outputs; loss xent"));
  // 8·2+8 + 8+8 (γ, β) + 4·8+4 + 4+4 + 2·4+2 trained values.
  CHECK_THAT(info.out, Contains("94 trained"));
  // 94 trained and 24 running floats, 2 int64 counters.
  CHECK_THAT(info.out, Contains("model tensors: 16, 488 bytes"));
  CHECK_THAT(info.out, Contains("1.num_batches_tracked                I64 []"));
  CHECK_THAT(info.out, !Contains("optimizer tensors"));  // plain SGD keeps no state
  CHECK_THAT(info.out, Contains("classes:     0, 1"));
  CHECK_THAT(info.out, Contains("settings:    optimizer sgd, lr 0.3"));
  CHECK_THAT(info.out, Contains("checkpoint:  "));

  SECTION("a checkpoint's optimizer state is listed too, as its own group") {
    REQUIRE(run_cli(f.dir, f.train({"--layers", "8,4", "--batch-norm", "--epochs", "1",
                                    "--optimizer", "adam", "--out", f.path("adam.st")}))
                .exit_code == 0);
    const Run adam = run_cli(f.dir, {"info", "adam.st"});
    CAPTURE(adam.out);
    REQUIRE(adam.exit_code == 0);
    // exp_avg and exp_avg_sq of each of the 10 trained tensors (weights, biases, γ, β).
    CHECK_THAT(adam.out, Contains(", 188 optimizer state"));
    CHECK_THAT(adam.out, Contains("optimizer tensors: 20, 752 bytes"));
    for (const char* name : {"optimizer.0.weight.exp_avg ", "optimizer.0.weight.exp_avg_sq ",
                             "optimizer.6.bias.exp_avg ", "optimizer.6.bias.exp_avg_sq "}) {
      CHECK_THAT(adam.out, Contains(name));
    }
    CHECK_THAT(adam.out, Contains("optimizer.1.weight.exp_avg_sq        F32 [8]"));
  }

  const std::vector<char> bytes = read_bytes(f.dir / "m.st");
  write_bytes(f.dir / "cut.st", std::vector<char>(bytes.begin(), bytes.begin() + 100));
  const Run cut = run_cli(f.dir, {"info", "cut.st"});
  CHECK(cut.exit_code == 1);
  CHECK_THAT(cut.err, Contains("cut.st") && Contains("header length"));
}

TEST_CASE("train takes leaky_relu from --activation and from --spec, and records its slope",
          "[cli][spec]") {
  CliFixture f;
  const Run flag = run_cli(
      f.dir, f.train({"--epochs", "1", "--activation", "leaky_relu", "--out", f.path("flag.st")}));
  CAPTURE(flag.err);
  REQUIRE(flag.exit_code == 0);
  CHECK_THAT(shardprop::read_safetensors_metadata(f.dir / "flag.st").at("shardprop.model"),
             Contains("leaky_relu"));
  const Run spec =
      run_cli(f.dir, f.train({"--epochs", "1", "--spec", "dense(8) leaky_relu(0.2) dense(2)",
                              "--out", f.path("spec.st")}));
  CAPTURE(spec.err);
  REQUIRE(spec.exit_code == 0);
  CHECK_THAT(shardprop::read_safetensors_metadata(f.dir / "spec.st").at("shardprop.model"),
             Contains("leaky_relu(0.2)"));
  CHECK(shardprop::load_model(f.dir / "spec.st").spec().layers.size() == 3);
}
