// RunMetadata: what a run records round-trips through a file, and each missing or malformed
// key is an error naming the file and the key.
#include <catch2/catch.hpp>

#include <limits>
#include <map>
#include <string>
#include <vector>

#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/trained_model.hpp"
#include "test_util.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;

namespace {

Model classifier() {
  Model model(ModelSpec::mlp(2, std::vector<int>{4}, 3, Activation::relu, Loss::xent));
  model.initialize(1);
  return model;
}

RunMetadata example() {
  RunMetadata m;
  m.data_name = "data/train.csv";
  m.has_data_paths = true;
  m.data_path = "/abs/data/train.csv";
  m.validation_path = "";
  m.feature_names = {"x1", "x2"};
  m.target_names = {"label"};
  m.class_names = {"bird", "cat", "dog"};
  m.standardization.mean = {1.0f, 0.1f};
  m.standardization.scale = {0.5f, 4.0f};
  m.settings = R"({"epochs":5,"lr":0.1})";  // as JSON writes it: keys sorted
  m.seed = 18446744073709551615ull;         // the largest seed survives as text
  m.epochs = 3;
  m.run.restart = 1;
  m.run.weights_restart = 1;
  m.run.best_restart = 0;
  m.run.best_restart_loss = 0.25;
  m.run.best_loss = 0.5;
  m.run.best_epoch = 2;
  m.run.bad_epochs = 1;
  return m;
}

}  // namespace

TEST_CASE("run metadata written to a file reads back the same", "[run_metadata]") {
  test::TempDir dir;
  const RunMetadata m = example();
  save_safetensors(classifier(), dir / "m.st", run_metadata_entries(m));
  const RunMetadata read = read_run_metadata(load_trained_model(dir / "m.st"), "m.st");
  CHECK(read.data_name == m.data_name);
  CHECK(read.has_data_paths);
  CHECK(read.data_path == m.data_path);
  CHECK(read.validation_path.empty());
  CHECK(read.feature_names == m.feature_names);
  CHECK(read.target_names == m.target_names);
  CHECK(read.class_names == m.class_names);
  CHECK(read.standardization.mean == m.standardization.mean);
  CHECK(read.standardization.scale == m.standardization.scale);
  CHECK(read.settings == m.settings);
  CHECK(read.seed == m.seed);
  CHECK(read.epochs == 3);
  CHECK(read.run.restart == 1);
  CHECK(read.run.weights_restart == 1);
  CHECK_FALSE(read.run.restarts_done);
  CHECK(read.run.best_restart == 0);
  CHECK(read.run.best_restart_loss == 0.25);
  CHECK(read.run.best_loss == 0.5);
  CHECK(read.run.best_epoch == 2);
  CHECK(read.run.bad_epochs == 1);

  SECTION("the documented forms of the values") {
    const std::map<std::string, std::string> entries = run_metadata_entries(m);
    CHECK(entries.at("shardprop.standardization") == R"({"mean":[1.0,0.1],"scale":[0.5,4.0]})");
    CHECK(entries.at("shardprop.data_files") == R"({"data":"/abs/data/train.csv","val":""})");
    CHECK(entries.at("shardprop.epochs") == "3");
    CHECK(entries.at("shardprop.seed") == "18446744073709551615");
  }
  SECTION("no loss yet is stored as null and reads back as infinity") {
    RunMetadata fresh = m;
    fresh.run = RunState{};
    CHECK_THAT(run_metadata_entries(fresh).at("shardprop.run"),
               Contains(R"("best_loss":null)") && Contains(R"("best_restart_loss":null)"));
    save_safetensors(classifier(), dir / "fresh.st", run_metadata_entries(fresh));
    const RunMetadata again = read_run_metadata(load_trained_model(dir / "fresh.st"), "fresh.st");
    CHECK(again.run.best_loss == std::numeric_limits<double>::infinity());
    CHECK(again.run.best_restart == -1);
  }
}

TEST_CASE("missing or malformed run metadata is an error naming the file and the key",
          "[run_metadata]") {
  test::TempDir dir;
  using Case = std::pair<std::string, std::string>;  // key, bad value ("" : missing)
  const auto [key, value] = GENERATE(
      Case{"shardprop.train_options", ""}, Case{"shardprop.train_options", "[1]"},
      Case{"shardprop.run", ""}, Case{"shardprop.run", R"({"restart": 0)"},
      Case{"shardprop.run", R"({"restart":"0","weights_restart":0,"restarts_done":false,
                  "best_restart":-1,"best_epoch":0,"bad_epochs":0})"},
      Case{"shardprop.run", R"({"restart":0,"weights_restart":0,"restarts_done":false,
                  "best_restart":-1,"best_epoch":0,"bad_epochs":99999999999})"},
      Case{"shardprop.epochs", ""}, Case{"shardprop.epochs", "3x"}, Case{"shardprop.epochs", "-1"},
      Case{"shardprop.epochs", " 3"}, Case{"shardprop.seed", "1e3"},
      Case{"shardprop.data_files", R"({"data":3})"}, Case{"shardprop.data_files", "[]"});
  CAPTURE(key, value);
  std::map<std::string, std::string> entries = run_metadata_entries(example());
  if (value.empty()) {
    entries.erase(key);
  } else {
    entries[key] = value;
  }
  save_safetensors(classifier(), dir / "bad.st", entries);
  const TrainedModel trained = load_trained_model(dir / "bad.st");
  CHECK_THROWS_WITH(read_run_metadata(trained, "bad.st"),
                    Contains("bad.st") && Contains("'" + key + "'"));
}

TEST_CASE("names that are not UTF-8 and settings that are not an object are not written",
          "[run_metadata]") {
  RunMetadata m = example();
  SECTION("a feature name") {
    m.feature_names[0] = std::string("caf\xe9");
    CHECK_THROWS_WITH(run_metadata_entries(m),
                      Contains("data/train.csv") && Contains("feature column name"));
  }
  SECTION("settings") {
    m.settings = "[1, 2]";
    CHECK_THROWS_AS(run_metadata_entries(m), Error);
  }
}
