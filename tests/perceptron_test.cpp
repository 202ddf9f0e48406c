// The textbook perceptron: convergence on separable data (within Novikoff's bound), the exact
// update w ← w + η(t − sign(w·x + b))x, and the errors for bad targets and feature counts.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/perceptron.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::Dataset;
using shardprop::Perceptron;
using shardprop::test::thrown_message;
using shardprop::test::uniform_pm1;

Dataset make_dataset(int features, const std::vector<std::vector<float>>& rows,
                     const std::vector<float>& targets) {
  Dataset data;
  data.rows = static_cast<std::int64_t>(rows.size());
  data.feature_count = features;
  data.target_width = 1;
  for (const auto& row : rows) data.features.insert(data.features.end(), row.begin(), row.end());
  data.targets = targets;
  return data;
}

// Points in [-1, 1)² labelled by the line 0.6·x1 − 0.8·x2 + 0.1 = 0 (unit normal), keeping only
// points at distance ≥ margin from it.
Dataset separable_dataset(std::uint64_t seed, int rows, double margin) {
  std::mt19937_64 bits(seed);
  Dataset data;
  data.feature_count = 2;
  data.target_width = 1;
  while (data.rows < rows) {
    const float x1 = uniform_pm1(bits);
    const float x2 = uniform_pm1(bits);
    const double distance = 0.6 * x1 - 0.8 * x2 + 0.1;
    if (std::abs(distance) < margin) continue;
    data.features.push_back(x1);
    data.features.push_back(x2);
    data.targets.push_back(distance > 0 ? 1.0f : -1.0f);
    ++data.rows;
  }
  return data;
}

}  // namespace

TEST_CASE(
    "the perceptron rule reaches zero mistakes on linearly separable data within Novikoff's bound",
    "[perceptron]") {
  const std::uint64_t seed = GENERATE(1u, 2u, 3u);
  const float learning_rate = GENERATE(1.0f, 0.1f);
  CAPTURE(seed, learning_rate);
  const Dataset data = separable_dataset(seed, 400, 0.1);

  // Novikoff: with x̃ = (x, 1) and a unit separator ũ with margin γ = min t·ũ·x̃, the rule
  // makes at most (R/γ)² mistakes in total, R = max |x̃|. Here ũ ∝ (0.6, −0.8, 0.1).
  const double norm = std::sqrt(0.6 * 0.6 + 0.8 * 0.8 + 0.1 * 0.1);
  double radius_squared = 0.0;
  double gamma = 1.0e9;
  for (std::int64_t r = 0; r < data.rows; ++r) {
    const auto x = data.row_features(r);
    radius_squared = std::max(radius_squared, double{x[0]} * x[0] + double{x[1]} * x[1] + 1.0);
    gamma = std::min(gamma, data.targets[r] * (0.6 * x[0] - 0.8 * x[1] + 0.1) / norm);
  }
  REQUIRE(gamma > 0.0);
  const double mistake_bound = radius_squared / (gamma * gamma);

  Perceptron perceptron(2, learning_rate);
  std::int64_t total_mistakes = 0;
  std::int64_t last_mistakes = -1;
  int epochs = 0;
  while (last_mistakes != 0 && epochs < 1000) {
    last_mistakes = perceptron.train_epoch(data);
    total_mistakes += last_mistakes;
    ++epochs;
  }
  CAPTURE(epochs, total_mistakes, mistake_bound);
  REQUIRE(last_mistakes == 0);
  CHECK(total_mistakes > 0);  // it did learn: the zero model misclassifies the −1 points
  CHECK(static_cast<double>(total_mistakes) <= mistake_bound);

  SECTION("after convergence every training point is classified correctly") {
    for (std::int64_t r = 0; r < data.rows; ++r) {
      CHECK(perceptron.predict(data.row_features(r)) == data.targets[r]);
    }
  }
  SECTION("another epoch on converged data changes nothing") {
    const std::vector<float> weights(perceptron.weights().begin(), perceptron.weights().end());
    const float bias = perceptron.bias();
    CHECK(perceptron.train_epoch(data) == 0);
    CHECK(std::vector<float>(perceptron.weights().begin(), perceptron.weights().end()) == weights);
    CHECK(perceptron.bias() == bias);
  }
}

TEST_CASE("predict returns exactly +1 or -1, and +1 on the decision boundary", "[perceptron]") {
  Perceptron perceptron(3);
  SECTION("an untrained perceptron has w·x + b = 0 everywhere, which counts as +1") {
    CHECK(perceptron.predict(std::vector<float>{0.0f, 0.0f, 0.0f}) == 1.0f);
    CHECK(perceptron.predict(std::vector<float>{-5.0f, 2.0f, -1.0f}) == 1.0f);
  }
  SECTION("a trained perceptron gives ±1 with the sign of w·x + b") {
    // One mistake on x = (1, 0, 0), t = −1 gives w = (−2, 0, 0), b = −2.
    const Dataset one = make_dataset(3, {{1.0f, 0.0f, 0.0f}}, {-1.0f});
    REQUIRE(perceptron.train_epoch(one) == 1);
    std::mt19937_64 bits(7);
    for (int i = 0; i < 200; ++i) {
      const std::vector<float> x{3.0f * uniform_pm1(bits), uniform_pm1(bits), uniform_pm1(bits)};
      const float y = perceptron.predict(x);
      CAPTURE(x[0]);
      CHECK((y == 1.0f || y == -1.0f));
      CHECK(y == (-2.0 * x[0] - 2.0 >= 0.0 ? 1.0f : -1.0f));
    }
    // Exactly on the boundary w·x + b = 0 (x1 = −1): +1.
    CHECK(perceptron.predict(std::vector<float>{-1.0f, 4.0f, 4.0f}) == 1.0f);
  }
}

TEST_CASE("a perceptron update step matches w <- w + eta (t - sign(w.x + b)) x by hand",
          "[perceptron]") {
  Perceptron perceptron(3, 0.5f);
  // Row 1: w = 0, b = 0 → sign = +1, t = −1, error −2:
  //   w = 0.5·(−2)·(1, −2, 0.5) = (−1, 2, −0.5), b = 0.5·(−2) = −1.
  // Row 2: w·x + b = (−1)(2) + 2·1 + 0 − 1 = −1 → sign −1, t = +1, error +2:
  //   w = (−1, 2, −0.5) + 0.5·2·(2, 1, 0) = (1, 3, −0.5), b = −1 + 1 = 0.
  // Row 3: w·x + b = 3 → sign +1 = t: no update.
  const Dataset data = make_dataset(
      3, {{1.0f, -2.0f, 0.5f}, {2.0f, 1.0f, 0.0f}, {0.0f, 1.0f, 0.0f}}, {-1.0f, 1.0f, 1.0f});
  SECTION("after the first row alone") {
    const Dataset first = make_dataset(3, {{1.0f, -2.0f, 0.5f}}, {-1.0f});
    CHECK(perceptron.train_epoch(first) == 1);
    CHECK(std::vector<float>(perceptron.weights().begin(), perceptron.weights().end()) ==
          std::vector<float>{-1.0f, 2.0f, -0.5f});
    CHECK(perceptron.bias() == -1.0f);
  }
  SECTION("after the whole epoch: two mistakes, the third row leaves w alone") {
    CHECK(perceptron.train_epoch(data) == 2);
    CHECK(std::vector<float>(perceptron.weights().begin(), perceptron.weights().end()) ==
          std::vector<float>{1.0f, 3.0f, -0.5f});
    CHECK(perceptron.bias() == 0.0f);
  }
}

TEST_CASE("the perceptron rejects targets other than +1 and -1 and leaves its weights alone",
          "[perceptron]") {
  const float bad_target = GENERATE(0.0f, 2.0f, 0.5f, -0.999f);
  CAPTURE(bad_target);
  Perceptron perceptron(2);
  // The bad target comes after a row that would be a mistake, so an update-then-validate
  // implementation would change w before throwing.
  const Dataset data = make_dataset(2, {{1.0f, 1.0f}, {2.0f, -1.0f}}, {-1.0f, bad_target});
  CHECK_THAT(thrown_message<shardprop::Error>([&] { perceptron.train_epoch(data); }),
             Contains("row 1") && Contains("+1 or -1"));
  CHECK(std::vector<float>(perceptron.weights().begin(), perceptron.weights().end()) ==
        std::vector<float>{0.0f, 0.0f});
  CHECK(perceptron.bias() == 0.0f);
}

TEST_CASE("the perceptron rejects a wrong number of features", "[perceptron]") {
  Perceptron perceptron(3);
  SECTION("predict with too few or too many values") {
    CHECK_THAT(thrown_message<shardprop::Error>([&] {
                 perceptron.predict(std::vector<float>{1.0f, 2.0f});
               }),
               Contains("2 features given") && Contains("3 inputs"));
    CHECK_THROWS_AS(perceptron.predict(std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f}),
                    shardprop::Error);
  }
  SECTION("train_epoch on a dataset of another width") {
    const Dataset data = make_dataset(2, {{1.0f, 1.0f}}, {1.0f});
    CHECK_THAT(thrown_message<shardprop::Error>([&] { perceptron.train_epoch(data); }),
               Contains("2 features"));
  }
  SECTION("construction with no inputs or a non-positive learning rate") {
    CHECK_THROWS_AS(Perceptron(0), shardprop::Error);
    CHECK_THROWS_AS(Perceptron(2, 0.0f), shardprop::Error);
    CHECK_THROWS_AS(Perceptron(2, -1.0f), shardprop::Error);
  }
}
