// load_trained_model: the metadata `shardprop train` writes comes back as names, classes and a
// standardization, and each kind of inconsistent or malformed entry is an error naming the file
// and the key.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/trained_model.hpp"
#include "test_util.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

Model classifier() {
  Model model(ModelSpec::mlp(2, std::vector<int>{4}, 3, Activation::relu, Loss::xent));
  model.initialize(1);
  return model;
}

std::map<std::string, std::string> good_metadata() {
  return {{"shardprop.features", R"(["x1","x2"])"},
          {"shardprop.targets", R"(["label"])"},
          {"shardprop.classes", R"(["bird","cat","dog"])"},
          {"shardprop.standardization", R"({"mean":[1,2],"scale":[0.5,4]})"},
          {"someone.else", "kept"}};
}

}  // namespace

TEST_CASE("load_trained_model returns the model and what its metadata says", "[checkpoint]") {
  test::TempDir dir;
  const Model saved = classifier();
  save_safetensors(saved, dir / "m.st", good_metadata());
  const TrainedModel t = load_trained_model(dir / "m.st");
  CHECK(t.model.outputs() == 3);
  CHECK(t.feature_names == std::vector<std::string>{"x1", "x2"});
  CHECK(t.target_names == std::vector<std::string>{"label"});
  CHECK(t.class_names == std::vector<std::string>{"bird", "cat", "dog"});
  CHECK(t.standardization.mean == std::vector<float>{1.0f, 2.0f});
  CHECK(t.standardization.scale == std::vector<float>{0.5f, 4.0f});
  CHECK(t.metadata.at("someone.else") == "kept");

  SECTION("a classifier without recorded names has classes named by index") {
    save_safetensors(saved, dir / "bare.st");
    const TrainedModel bare = load_trained_model(dir / "bare.st");
    CHECK(bare.class_names == std::vector<std::string>{"0", "1", "2"});
    CHECK(bare.feature_names.empty());
    CHECK(bare.standardization.empty());
  }
}

TEST_CASE("inconsistent or malformed metadata is an error naming the file and the key",
          "[checkpoint]") {
  using Row = std::tuple<std::string, std::string, std::string>;
  const auto [key, value, message] = GENERATE(table<std::string, std::string, std::string>({
      Row{"shardprop.classes", R"(["a","b"])", "2 names, expected 3 (one per model output)"},
      Row{"shardprop.classes", R"(["a","b","a"])", "the name 'a' appears twice"},
      Row{"shardprop.classes", R"(["a","b",3])", "expected a JSON array of strings"},
      Row{"shardprop.features", R"(["x1"])", "1 names, expected 2"},
      Row{"shardprop.features", R"(["x1", "x2")", "not valid JSON"},
      Row{"shardprop.targets", R"(["a","b"])", "a classifier has one label column"},
      Row{"shardprop.standardization", R"({"mean":[1],"scale":[1,1]})", "'mean' has 1 values"},
      Row{"shardprop.standardization", R"({"mean":[1,2],"scale":[1,0]})", "not positive"},
      Row{"shardprop.standardization", R"({"mean":[1,2]})", "expected an array 'scale'"},
      Row{"shardprop.standardization", R"([1,2])", "expected a JSON object"},
  }));
  CAPTURE(key, value);
  test::TempDir dir;
  std::map<std::string, std::string> metadata = good_metadata();
  metadata[key] = value;
  save_safetensors(classifier(), dir / "m.st", metadata);
  const std::string what = test::thrown_message<Error>([&] { load_trained_model(dir / "m.st"); });
  CHECK_THAT(what, StartsWith((dir / "m.st").string() + ": metadata '" + key + "': "));
  CHECK_THAT(what, Contains(message));
}

TEST_CASE("class names on a regression model are an error", "[checkpoint]") {
  test::TempDir dir;
  Model model(ModelSpec::mlp(2, std::vector<int>{}, 1, Activation::relu, Loss::mse));
  save_safetensors(model, dir / "m.st", {{"shardprop.classes", R"(["a"])"}});
  CHECK_THAT(test::thrown_message<Error>([&] { load_trained_model(dir / "m.st"); }),
             Contains("'shardprop.classes'") && Contains("mse loss, which has no classes"));
}
