// Bad input is a shardprop::Error whose message says what is wrong, never a crash or a silent
// change: trainer settings, step arguments, model specs, names of activations and losses, and
// datasets that do not fit the model. Leaves out CSV and checkpoint errors (their own tests).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::Activation;
using shardprop::ActivationSpec;
using shardprop::Dataset;
using shardprop::DenseSpec;
using shardprop::Error;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::Trainer;
using shardprop::TrainerSettings;

// The expression throws shardprop::Error (not another type, not a crash) and its message
// matches. It is evaluated twice, once per check; every expression here throws before it
// changes anything.
#define CHECK_ERROR(expression, message_matcher)    \
  do {                                              \
    CHECK_THROWS_AS(expression, shardprop::Error);  \
    CHECK_THROWS_WITH(expression, message_matcher); \
  } while (false)

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInfinity = std::numeric_limits<float>::infinity();

// 3 inputs → 4 → tanh → 3 outputs.
Model small_model(Loss loss) {
  const int hidden[] = {4};
  Model model(ModelSpec::mlp(3, hidden, 3, Activation::tanh, loss));
  model.initialize(1);
  return model;
}

TrainerSettings valid_settings() {
  TrainerSettings s;
  s.threads = 1;
  s.shards = 2;
  s.batch_size = 4;
  s.learning_rate = 0.1f;
  return s;
}

std::vector<float> snapshot(const Model& model) {
  return {model.parameters().begin(), model.parameters().end()};
}

bool unchanged(const Model& model, const std::vector<float>& before) {
  return model.parameters().size() == before.size() &&
         std::memcmp(model.parameters().data(), before.data(), before.size() * sizeof(float)) == 0;
}

Dataset xent_dataset() {  // 3 rows fitting small_model(Loss::xent)
  Dataset d;
  d.rows = 3;
  d.feature_count = 3;
  d.target_width = 1;
  d.features = {0.1f, 0.2f, 0.3f, -0.1f, 0.5f, 0.0f, 1.0f, -1.0f, 0.25f};
  d.targets = {0, 2, 1};
  return d;
}

}  // namespace

TEST_CASE("Valid settings are accepted, including automatic shards and the caller's arena",
          "[settings]") {
  Model model = small_model(Loss::mse);
  TrainerSettings s = valid_settings();
  s.threads = 0;
  s.shards = 0;
  s.learning_rate = 0.0f;  // a zero step is allowed (evaluation-only trainers)
  const Trainer trainer(model, s);
  CHECK(trainer.shard_count() >= 1);
  CHECK(trainer.shard_count() <= s.batch_size);
  CHECK(trainer.shard_count() == shardprop::default_shard_count(model.spec(), s.batch_size));
}

TEST_CASE("Bad trainer settings are rejected with a message naming the setting", "[settings]") {
  Model model = small_model(Loss::mse);
  TrainerSettings s = valid_settings();

  SECTION("zero batch size") {
    s.batch_size = 0;
    CHECK_ERROR(Trainer(model, s), Contains("batch size") && Contains("got 0"));
  }
  SECTION("negative batch size") {
    s.batch_size = -3;
    CHECK_ERROR(Trainer(model, s), Contains("batch size") && Contains("-3"));
  }
  SECTION("negative shard count") {
    s.shards = -1;
    CHECK_ERROR(Trainer(model, s), Contains("shards") && Contains("-1"));
  }
  SECTION("more shards than rows in a batch") {
    s.shards = 5;
    s.batch_size = 4;
    CHECK_ERROR(Trainer(model, s), Contains("shards (5)") && Contains("batch size (4)"));
  }
  SECTION("negative learning rate") {
    s.learning_rate = -0.5f;
    CHECK_ERROR(Trainer(model, s), Contains("learning rate") && Contains("-0.5"));
  }
  SECTION("NaN learning rate") {
    s.learning_rate = kNaN;
    CHECK_ERROR(Trainer(model, s), Contains("learning rate") && Contains("nan"));
  }
  SECTION("infinite learning rate") {
    s.learning_rate = kInfinity;
    CHECK_ERROR(Trainer(model, s), Contains("learning rate") && Contains("finite"));
  }
  SECTION("negative weight decay") {
    s.weight_decay = -0.01f;
    CHECK_ERROR(Trainer(model, s), Contains("weight decay") && Contains("-0.01"));
  }
  SECTION("NaN weight decay") {
    s.weight_decay = kNaN;
    CHECK_ERROR(Trainer(model, s), Contains("weight decay") && Contains("nan"));
  }
  SECTION("negative thread count") {
    s.threads = -2;
    CHECK_ERROR(Trainer(model, s), Contains("threads") && Contains("-2"));
  }
}

TEST_CASE("A step with input of the wrong shape is rejected and leaves the model unchanged",
          "[settings]") {
  Model model = small_model(Loss::mse);  // 3 inputs, 3 outputs, batch size 4
  Trainer trainer(model, valid_settings());
  const std::vector<float> before = snapshot(model);

  SECTION("more rows than the batch size") {
    const std::vector<float> x(5 * 3, 0.5f), t(5 * 3, 0.0f);
    CHECK_ERROR(trainer.step(x, t), Contains("5 rows") && Contains("batch size 4"));
  }
  SECTION("a feature count that is not a multiple of the inputs") {
    const std::vector<float> x(7, 0.5f), t(2 * 3, 0.0f);
    CHECK_ERROR(trainer.step(x, t), Contains("7 feature values") && Contains("3 inputs"));
  }
  SECTION("no rows at all") {
    const std::vector<float> none;
    CHECK_ERROR(trainer.step(none, none), Contains("0 feature values"));
  }
  SECTION("too few targets") {
    const std::vector<float> x(2 * 3, 0.5f), t(5, 0.0f);
    CHECK_ERROR(trainer.step(x, t), Contains("need 6 target values") && Contains("got 5"));
  }
  SECTION("too many targets") {
    const std::vector<float> x(2 * 3, 0.5f), t(7, 0.0f);
    CHECK_ERROR(trainer.step(x, t), Contains("need 6 target values") && Contains("got 7"));
  }
  CHECK(unchanged(model, before));
  // The trainer is still usable after rejecting input.
  const std::vector<float> x(2 * 3, 0.5f), t(2 * 3, 0.25f);
  CHECK_NOTHROW(trainer.step(x, t));
  CHECK_FALSE(unchanged(model, before));
}

TEST_CASE("A xent step rejects targets that are not class indices", "[settings]") {
  Model model = small_model(Loss::xent);  // 3 classes
  Trainer trainer(model, valid_settings());
  const std::vector<float> before = snapshot(model);
  const std::vector<float> x(2 * 3, 0.5f);

  SECTION("a class past the last one") {
    const std::vector<float> t = {0.0f, 3.0f};
    CHECK_ERROR(trainer.step(x, t), Contains("row 1") && Contains("[0, 3)"));
  }
  SECTION("a negative class") {
    const std::vector<float> t = {-1.0f, 0.0f};
    CHECK_ERROR(trainer.step(x, t), Contains("row 0") && Contains("class index"));
  }
  SECTION("a fractional class") {
    const std::vector<float> t = {1.0f, 0.5f};
    CHECK_ERROR(trainer.step(x, t), Contains("row 1") && Contains("class index"));
  }
  SECTION("a NaN class") {
    const std::vector<float> t = {kNaN, 1.0f};
    CHECK_ERROR(trainer.step(x, t), Contains("row 0") && Contains("class index"));
  }
  CHECK(unchanged(model, before));
}

TEST_CASE("Bad model specs are rejected with a message naming the layer or loss", "[settings]") {
  ModelSpec spec;
  spec.inputs = 3;
  spec.loss = Loss::mse;

  SECTION("a dense layer of width zero") {
    spec.layers = {DenseSpec{4}, ActivationSpec{Activation::relu}, DenseSpec{0}};
    CHECK_ERROR(Model(spec),
                Contains("layer 2") && Contains("positive width") && Contains("got 0"));
  }
  SECTION("a dense layer of negative width") {
    spec.layers = {DenseSpec{-4}};
    CHECK_ERROR(Model(spec), Contains("layer 0") && Contains("positive width"));
  }
  SECTION("no dense layer") {
    spec.layers = {ActivationSpec{Activation::sigmoid}};
    CHECK_ERROR(Model(spec), Contains("dense layer"));
  }
  SECTION("no layers at all") { CHECK_ERROR(Model(spec), Contains("no layers")); }
  SECTION("zero inputs") {
    spec.inputs = 0;
    spec.layers = {DenseSpec{2}};
    CHECK_ERROR(Model(spec), Contains("inputs") && Contains("got 0"));
  }
  SECTION("xent with a single output") {
    spec.loss = Loss::xent;
    spec.layers = {DenseSpec{4}, ActivationSpec{Activation::tanh}, DenseSpec{1}};
    CHECK_ERROR(Model(spec), Contains("xent") && Contains("2 outputs"));
  }
}

TEST_CASE("Activation and loss names parse exactly, and unknown names are rejected", "[settings]") {
  for (const char* name : {"identity", "sigmoid", "tanh", "relu"}) {
    CAPTURE(name);
    CHECK(to_string(shardprop::parse_activation(name)) == name);
  }
  for (const char* name : {"mse", "xent", "bce"}) {
    CAPTURE(name);
    CHECK(to_string(shardprop::parse_loss(name)) == name);
  }
  CHECK_ERROR(shardprop::parse_activation("softmax"),
              Contains("unknown activation 'softmax'") && Contains("relu"));
  CHECK_ERROR(shardprop::parse_activation("ReLU"), Contains("unknown activation 'ReLU'"));
  CHECK_ERROR(shardprop::parse_activation(""), Contains("unknown activation ''"));
  CHECK_ERROR(shardprop::parse_loss("hinge"), Contains("unknown loss 'hinge'") && Contains("xent"));
  CHECK_ERROR(shardprop::parse_loss("MSE"), Contains("unknown loss 'MSE'"));
}

TEST_CASE("A dataset that does not fit the model is rejected by train_epoch and evaluate",
          "[settings]") {
  Model model = small_model(Loss::xent);
  Trainer trainer(model, valid_settings());
  const std::vector<float> before = snapshot(model);
  Dataset data = xent_dataset();
  REQUIRE_NOTHROW(data.validate());

  SECTION("too many features per row") {
    data.feature_count = 4;
    data.features.resize(12, 0.0f);
    CHECK_ERROR(trainer.train_epoch(data), Contains("4 features") && Contains("needs 3"));
    CHECK_ERROR(trainer.evaluate(data), Contains("4 features") && Contains("needs 3"));
  }
  SECTION("more targets per row than the loss takes") {
    data.target_width = 3;
    data.targets.resize(9, 0.0f);
    CHECK_ERROR(trainer.train_epoch(data), Contains("3 targets per row") && Contains("and 1"));
    CHECK_ERROR(trainer.evaluate(data), Contains("3 targets per row") && Contains("and 1"));
  }
  SECTION("a feature array shorter than rows × features") {
    data.features.pop_back();
    CHECK_ERROR(trainer.train_epoch(data), Contains("need 9 values") && Contains("have 8"));
    CHECK_ERROR(trainer.evaluate(data), Contains("need 9 values") && Contains("have 8"));
  }
  SECTION("a target array longer than rows × target width") {
    data.targets.push_back(0.0f);
    CHECK_ERROR(trainer.train_epoch(data), Contains("need 3 values") && Contains("have 4"));
  }
  SECTION("a non-finite feature") {
    data.features[4] = kNaN;
    CHECK_ERROR(trainer.train_epoch(data),
                Contains("feature 1 of row 1") && Contains("not finite"));
  }
  SECTION("a class index out of range") {
    data.targets[2] = 7.0f;
    CHECK_ERROR(trainer.train_epoch(data), Contains("row 2") && Contains("[0, 3)"));
    CHECK_ERROR(trainer.evaluate(data), Contains("row 2") && Contains("[0, 3)"));
  }
  SECTION("no rows") {
    data.rows = 0;
    data.features.clear();
    data.targets.clear();
    CHECK_ERROR(trainer.train_epoch(data), Contains("no rows"));
  }
  CHECK(unchanged(model, before));
  CHECK(trainer.epochs_completed() == 0);
}

TEST_CASE("predict rejects feature and output spans of the wrong size", "[settings]") {
  const Model model = small_model(Loss::mse);
  std::vector<float> out(3);
  CHECK_ERROR(model.predict(std::vector<float>(4, 0.0f), out),
              Contains("4 feature values") && Contains("3 inputs"));
  CHECK_ERROR(model.predict(std::vector<float>(6, 0.0f), out),
              Contains("2 rows need 6") && Contains("holds 3"));
}
