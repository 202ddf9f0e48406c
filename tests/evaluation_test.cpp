// evaluate_model against answers worked out by hand (models whose weights make the predictions
// known), the same report for any thread count and any chunking, and its errors.
#include <tbb/task_arena.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "chunked_dataset.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/error.hpp"
#include "shardprop/evaluation.hpp"
#include "shardprop/trainer.hpp"
#include "test_util.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

// One dense layer, no activation: outputs = features · Wᵀ + b with W and b given.
Model dense_model(int inputs, int outputs, Loss loss, const std::vector<float>& weight,
                  const std::vector<float>& bias) {
  ModelSpec spec;
  spec.inputs = inputs;
  spec.layers = {DenseSpec{outputs}};
  spec.loss = loss;
  Model model(spec);
  for (const TensorInfo& t : model.tensors()) {
    const std::vector<float>& values = t.name == "0.weight" ? weight : bias;
    REQUIRE(values.size() == t.size);
    std::copy(values.begin(), values.end(), model.parameters().begin() + t.offset);
  }
  return model;
}

// outputs = features: the logits are whatever the rows say.
Model identity_model(int width, Loss loss) {
  std::vector<float> weight(static_cast<std::size_t>(width) * width, 0.0f);
  for (int j = 0; j < width; ++j) weight[static_cast<std::size_t>(j) * width + j] = 1.0f;
  return dense_model(width, width, loss, weight, std::vector<float>(width, 0.0f));
}

Dataset make_dataset(int features, int target_width, const std::vector<float>& x,
                     const std::vector<float>& t) {
  Dataset d;
  d.feature_count = features;
  d.target_width = target_width;
  d.rows = static_cast<std::int64_t>(x.size()) / features;
  d.features = x;
  d.targets = t;
  return d;
}

// Rows of a 3-class problem as (true class, predicted class): the logits are 2 for the predicted
// class and 0 elsewhere.
Dataset classified_rows(const std::vector<std::pair<int, int>>& true_predicted) {
  std::vector<float> x, t;
  for (const auto& [truth, predicted] : true_predicted) {
    for (int k = 0; k < 3; ++k) x.push_back(k == predicted ? 2.0f : 0.0f);
    t.push_back(static_cast<float>(truth));
  }
  return make_dataset(3, 1, x, t);
}

using shardprop::test::ChunkedDataset;

Dataset random_dataset(std::int64_t rows, int features, Loss loss, int outputs, unsigned seed) {
  std::mt19937_64 bits(seed);
  Dataset d;
  d.rows = rows;
  d.feature_count = features;
  d.target_width = loss == Loss::xent ? 1 : outputs;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < features; ++j) d.features.push_back(3.0f * test::uniform_pm1(bits));
    for (int j = 0; j < d.target_width; ++j) {
      const float u = test::uniform_pm1(bits);
      if (loss == Loss::xent) {
        d.targets.push_back(std::floor((u + 1.0f) * 0.5f * static_cast<float>(outputs)));
      } else if (loss == Loss::bce) {
        d.targets.push_back(u > 0.0f ? 1.0f : 0.0f);
      } else {
        d.targets.push_back(10.0f * u + 4.0f);
      }
    }
  }
  return d;
}

// Every field, compared exactly: the claims are bitwise.
void require_same(const EvaluationReport& a, const EvaluationReport& b) {
  REQUIRE(a.rows == b.rows);
  CHECK(a.mean_loss == b.mean_loss);
  CHECK(a.accuracy == b.accuracy);
  CHECK(a.confusion == b.confusion);
  CHECK(a.output_accuracy == b.output_accuracy);
  REQUIRE(a.per_class.size() == b.per_class.size());
  for (std::size_t c = 0; c < a.per_class.size(); ++c) {
    CHECK(a.per_class[c].precision == b.per_class[c].precision);
    CHECK(a.per_class[c].recall == b.per_class[c].recall);
    CHECK(a.per_class[c].f1 == b.per_class[c].f1);
  }
  REQUIRE(a.per_target.size() == b.per_target.size());
  for (std::size_t j = 0; j < a.per_target.size(); ++j) {
    CHECK(a.per_target[j].rmse == b.per_target[j].rmse);
    CHECK(a.per_target[j].mae == b.per_target[j].mae);
    CHECK(a.per_target[j].r2 == b.per_target[j].r2);
  }
  CHECK(a.overall.r2 == b.overall.r2);
}

}  // namespace

TEST_CASE("a classifier's confusion matrix, precision, recall and F1 match a hand count",
          "[evaluation]") {
  // true 0: predicted 0 twice, 1 once; true 1: 1 three times, 0 once; true 2: 0 once, 2 twice.
  const Dataset data = classified_rows(
      {{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 0}, {2, 0}, {2, 2}, {2, 2}});
  const EvaluationReport r = evaluate_model(identity_model(3, Loss::xent), data);
  REQUIRE(r.rows == 10);
  REQUIRE(r.classes == 3);
  const std::vector<std::int64_t> expected_confusion{2, 1, 0, 1, 3, 0, 1, 0, 2};
  CHECK(r.confusion == expected_confusion);
  CHECK(r.confusion_count(1, 0) == 1);  // row = true class, column = predicted
  CHECK_THAT(r.accuracy, WithinAbs(0.7, 1e-15));

  SECTION("per class") {
    // Class 0: 2 right of 4 predicted, of 3 true. Class 1: 3 of 4, of 4. Class 2: 2 of 2, of 3.
    CHECK(r.per_class[0].support == 3);
    CHECK(r.per_class[0].predicted == 4);
    CHECK_THAT(r.per_class[0].precision, WithinAbs(0.5, 1e-15));
    CHECK_THAT(r.per_class[0].recall, WithinAbs(2.0 / 3.0, 1e-15));
    CHECK_THAT(r.per_class[0].f1, WithinAbs(4.0 / 7.0, 1e-15));
    CHECK_THAT(r.per_class[1].precision, WithinAbs(0.75, 1e-15));
    CHECK_THAT(r.per_class[1].recall, WithinAbs(0.75, 1e-15));
    CHECK_THAT(r.per_class[1].f1, WithinAbs(0.75, 1e-15));
    CHECK(r.per_class[2].predicted == 2);
    CHECK_THAT(r.per_class[2].precision, WithinAbs(1.0, 1e-15));
    CHECK_THAT(r.per_class[2].recall, WithinAbs(2.0 / 3.0, 1e-15));
    CHECK_THAT(r.per_class[2].f1, WithinAbs(0.8, 1e-15));
  }
  SECTION("the loss is the mean negative log-likelihood of the softmax") {
    // Each row: log(e² + 2) − z_true, and z_true is 2 for the 7 right rows, 0 for the others.
    const double log_sum = std::log(std::exp(2.0) + 2.0);
    CHECK_THAT(r.mean_loss, WithinRel(log_sum - 2.0 * 7.0 / 10.0, 1e-6));
  }
}

TEST_CASE("a class never predicted has precision 0, one never present has recall 0",
          "[evaluation]") {
  // Class 2 is never predicted; class 1 never occurs.
  const Dataset data = classified_rows({{0, 0}, {0, 1}, {2, 0}, {2, 0}});
  const EvaluationReport r = evaluate_model(identity_model(3, Loss::xent), data);
  CHECK(r.per_class[2].predicted == 0);
  CHECK(r.per_class[2].precision == 0.0);
  CHECK(r.per_class[2].recall == 0.0);
  CHECK(r.per_class[2].f1 == 0.0);
  CHECK(r.per_class[1].support == 0);
  CHECK(r.per_class[1].recall == 0.0);
  CHECK(r.per_class[1].precision == 0.0);  // predicted once, never right
  CHECK_THAT(r.per_class[0].precision, WithinAbs(1.0 / 3.0, 1e-15));
  CHECK_THAT(r.per_class[0].recall, WithinAbs(0.5, 1e-15));
  CHECK_THAT(r.accuracy, WithinAbs(0.25, 1e-15));
}

TEST_CASE("a tie between logits is predicted as the first class, as Trainer::evaluate counts it",
          "[evaluation]") {
  const Dataset data = make_dataset(3, 1, {1, 1, 0, 0, 1, 1}, {1, 1});
  const EvaluationReport r = evaluate_model(identity_model(3, Loss::xent), data);
  CHECK(r.confusion_count(1, 0) == 1);
  CHECK(r.confusion_count(1, 1) == 1);
}

TEST_CASE("bce reports the accuracy of each output and the mean summed cross-entropy",
          "[evaluation]") {
  // Logits = features. Output 0 is right on row 1 only; output 1 on all three rows.
  const Dataset data = make_dataset(2, 2, {2, -1, -3, 4, 1, 0.5}, {1, 0, 1, 1, 0, 1});
  const EvaluationReport r = evaluate_model(identity_model(2, Loss::bce), data);
  REQUIRE(r.output_accuracy.size() == 2);
  CHECK_THAT(r.output_accuracy[0], WithinAbs(1.0 / 3.0, 1e-15));
  CHECK_THAT(r.output_accuracy[1], WithinAbs(1.0, 1e-15));
  CHECK_THAT(r.accuracy, WithinAbs(4.0 / 6.0, 1e-15));
  // −log σ(z) for t = 1 is log(1 + e^−z); −log(1 − σ(z)) for t = 0 is log(1 + e^z).
  auto softplus = [](double z) { return std::log1p(std::exp(z)); };
  const double total =
      softplus(-2) + softplus(-1) + softplus(3) + softplus(-4) + softplus(1) + softplus(-0.5);
  CHECK_THAT(r.mean_loss, WithinRel(total / 3.0, 1e-6));
}

TEST_CASE("regression RMSE, MAE and R² match a hand computation", "[evaluation]") {
  // y = 2x + 1 at x = 0..3 gives 1, 3, 5, 7 against targets 1, 3.5, 4, 8: errors 0, −½, 1, −1.
  const Model model = dense_model(1, 1, Loss::mse, {2.0f}, {1.0f});
  const Dataset data = make_dataset(1, 1, {0, 1, 2, 3}, {1, 3.5, 4, 8});
  const EvaluationReport r = evaluate_model(model, data);
  REQUIRE(r.per_target.size() == 1);
  // SS_res = 2.25; target mean 4.125, SS_tot = 25.1875.
  CHECK_THAT(r.per_target[0].rmse, WithinAbs(0.75, 1e-12));
  CHECK_THAT(r.per_target[0].mae, WithinAbs(0.625, 1e-12));
  CHECK_THAT(r.per_target[0].r2, WithinAbs(1.0 - 2.25 / 25.1875, 1e-12));
  CHECK_THAT(r.mean_loss, WithinAbs(0.5 * 2.25 / 4.0, 1e-12));  // ½ Σ e² per row, averaged
  CHECK(r.overall.rmse == r.per_target[0].rmse);
  CHECK(r.overall.r2 == r.per_target[0].r2);
  CHECK(r.accuracy == 0.0);
  CHECK(r.confusion.empty());
}

TEST_CASE(
    "R² of a constant target is 1 for exact predictions and 0 otherwise, and overall R² is the "
    "mean over targets",
    "[evaluation]") {
  // Output 0: y = x against t = x + 1 (R² < 1 but finite); output 1: y = 5 against t = 5 or 6.
  const Model model = dense_model(1, 2, Loss::mse, {1.0f, 0.0f}, {0.0f, 5.0f});
  SECTION("exact") {
    const EvaluationReport r = evaluate_model(model, make_dataset(1, 2, {0, 2}, {1, 5, 3, 5}));
    // Output 0: errors −1, −1; targets 1, 3 around 2: SS_tot = 2, SS_res = 2, R² = 0.
    CHECK_THAT(r.per_target[0].r2, WithinAbs(0.0, 1e-12));
    CHECK(r.per_target[1].r2 == 1.0);
    CHECK_THAT(r.overall.r2, WithinAbs(0.5, 1e-12));
    CHECK_THAT(r.overall.mae, WithinAbs(0.5, 1e-12));  // |e| = 1, 0, 1, 0
    CHECK_THAT(r.overall.rmse, WithinAbs(std::sqrt(0.5), 1e-12));
  }
  SECTION("not exact") {
    const EvaluationReport r = evaluate_model(model, make_dataset(1, 2, {0, 2}, {1, 6, 3, 6}));
    CHECK(r.per_target[1].r2 == 0.0);
    CHECK_THAT(r.per_target[1].rmse, WithinAbs(1.0, 1e-12));
  }
}

TEST_CASE("the report agrees with Trainer::evaluate on loss, accuracy and RMSE", "[evaluation]") {
  const Loss loss = GENERATE(Loss::xent, Loss::bce, Loss::mse);
  CAPTURE(to_string(loss));
  Model model(ModelSpec::mlp(5, std::vector<int>{12}, 3, Activation::tanh, loss));
  model.initialize(7);
  const Dataset data = random_dataset(1300, 5, loss, 3, 21);
  const EvaluationReport r = evaluate_model(model, data);
  TrainerSettings settings;
  const Trainer trainer(model, settings);
  const Metrics m = trainer.evaluate(data);
  CHECK(r.rows == m.rows);
  // The trainer runs the forward pass in pieces of another size, so the float outputs may differ
  // in their last bits (another product path); the definitions are the same.
  CHECK_THAT(r.mean_loss, WithinRel(m.loss, 1e-6));
  if (loss == Loss::mse) {
    CHECK_THAT(r.overall.rmse, WithinRel(m.rmse, 1e-6));
  } else {
    CHECK_THAT(r.accuracy, WithinAbs(m.accuracy, 1.5 / 1300.0));  // one borderline row at most
  }
}

TEST_CASE("the report is bitwise the same for 1 or 4 threads, in memory or streamed in any chunks",
          "[evaluation][determinism]") {
  const Loss loss = GENERATE(Loss::xent, Loss::bce, Loss::mse);
  CAPTURE(to_string(loss));
  Model model(ModelSpec::mlp(6, std::vector<int>{32, 16}, 4, Activation::relu, loss, true));
  model.initialize(3);
  // 2000 rows: several pieces of 256 and a partial one; chunk sizes straddle the pieces.
  const Dataset data = random_dataset(2000, 6, loss, 4, 5);
  EvaluationReport one_thread;
  tbb::task_arena(1).execute([&] { one_thread = evaluate_model(model, data); });
  REQUIRE(one_thread.rows == 2000);

  SECTION("four threads") {
    EvaluationReport four;
    tbb::task_arena(4).execute([&] { four = evaluate_model(model, data); });
    require_same(one_thread, four);
  }
  SECTION("streamed") {
    const std::int64_t chunk_rows = GENERATE(1, 7, 255, 256, 257, 1999, 5000);
    CAPTURE(chunk_rows);
    ChunkedDataset stream(data, chunk_rows);
    EvaluationReport streamed;
    tbb::task_arena(4).execute([&] { streamed = evaluate_model(model, stream); });
    require_same(one_thread, streamed);
    // A second pass rewinds: the same again.
    require_same(one_thread, evaluate_model(model, stream));
  }
}

TEST_CASE("a CSV stream gives the report of the whole file read at once", "[evaluation][csv]") {
  test::TempDir dir;
  std::string csv = "a,b,label\n";
  std::mt19937_64 bits(9);
  for (int r = 0; r < 900; ++r) {
    char line[96];
    const float a = test::uniform_pm1(bits);
    const float b = test::uniform_pm1(bits);
    std::snprintf(line, sizeof line, "%.6f,%.6f,%s\n", static_cast<double>(a),
                  static_cast<double>(b), a + b > 0.0f ? "yes" : (a > 0.0f ? "maybe" : "no"));
    csv += line;
  }
  test::write_text(dir / "d.csv", csv);
  CsvOptions options;
  options.target_kind = TargetKind::classes;
  const Dataset whole = read_csv(dir / "d.csv", options);
  Model model(ModelSpec::mlp(2, std::vector<int>{8}, 3, Activation::tanh, Loss::xent));
  model.initialize(1);
  CsvStream stream(dir / "d.csv", options, whole.class_names, 1000);  // about 40 rows a block
  require_same(evaluate_model(model, whole), evaluate_model(model, stream));
}

TEST_CASE("evaluate_model rejects data that does not fit the model, naming the row",
          "[evaluation]") {
  const Model classifier = identity_model(3, Loss::xent);
  SECTION("feature count") {
    const Dataset data = make_dataset(2, 1, {0, 0}, {0});
    CHECK_THAT(test::thrown_message<Error>([&] { evaluate_model(classifier, data); }),
               Contains("2 features") && Contains("needs 3"));
  }
  SECTION("a class index out of range") {
    const Dataset data = classified_rows({{0, 0}, {1, 1}, {3, 0}});
    CHECK_THAT(test::thrown_message<Error>([&] { evaluate_model(classifier, data); }),
               Contains("row 3") && Contains("not a class index in [0, 3)"));
  }
  SECTION("the row number counts across a stream's chunks") {
    const Dataset data = classified_rows({{0, 0}, {1, 1}, {2, 2}, {0, 0}, {5, 0}});
    ChunkedDataset stream(data, 2);
    CHECK_THAT(test::thrown_message<Error>([&] { evaluate_model(classifier, stream); }),
               Contains("row 5:"));
  }
  SECTION("a bce target outside [0, 1]") {
    const Dataset data = make_dataset(2, 2, {0, 0}, {1, 2});
    CHECK_THAT(
        test::thrown_message<Error>([&] { evaluate_model(identity_model(2, Loss::bce), data); }),
        Contains("row 1") && Contains("outside [0, 1]"));
  }
  SECTION("an empty dataset is a report of zero rows") {
    const EvaluationReport r = evaluate_model(classifier, make_dataset(3, 1, {}, {}));
    CHECK(r.rows == 0);
    CHECK(r.accuracy == 0.0);
    CHECK(r.mean_loss == 0.0);
  }
}
