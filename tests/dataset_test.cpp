// Datasets: standardization fitted on training data, the seeded validation split, and class
// labels lined up between files.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>

#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;

namespace {

Dataset make_dataset(std::int64_t rows, int features, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Dataset d;
  d.rows = rows;
  d.feature_count = features;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < features; ++j) d.features.push_back(3.0f * normal(rng) + float(10 * j));
    d.targets.push_back(static_cast<float>(r));  // the row's own index, to follow rows around
  }
  return d;
}

}  // namespace

TEST_CASE("standardization gives training features zero mean and unit variance",
          "[dataset][standardization]") {
  Dataset train = make_dataset(500, 4, 1);
  // A constant column and one with a large offset and small spread.
  for (std::int64_t r = 0; r < train.rows; ++r) {
    train.features[r * 4 + 2] = 7.0f;
    train.features[r * 4 + 3] = 1.0e4f + 0.01f * static_cast<float>(r % 10);
  }
  const Standardization s = Standardization::fit(train);
  REQUIRE(s.mean.size() == 4);
  CHECK(s.scale[2] == 1.0f);  // constant: centred, not divided by zero
  s.apply(train);
  for (int j = 0; j < 4; ++j) {
    double mean = 0.0, square = 0.0;
    for (std::int64_t r = 0; r < train.rows; ++r) {
      mean += train.features[r * 4 + j];
      square += static_cast<double>(train.features[r * 4 + j]) * train.features[r * 4 + j];
    }
    mean /= static_cast<double>(train.rows);
    const double variance = square / static_cast<double>(train.rows) - mean * mean;
    CAPTURE(j);
    CHECK(mean == Approx(0.0).margin(1e-4));
    CHECK(variance == Approx(j == 2 ? 0.0 : 1.0).margin(2e-3));
  }

  SECTION("other sets reuse the training statistics") {
    Dataset test = make_dataset(10, 4, 2);
    const Dataset raw = test;
    s.apply(test);
    for (std::size_t i = 0; i < test.features.size(); ++i) {
      const std::size_t j = i % 4;
      CHECK(test.features[i] == (raw.features[i] - s.mean[j]) / s.scale[j]);
    }
  }
  SECTION("a dataset with another feature count is rejected") {
    Dataset other = make_dataset(3, 5, 3);
    REQUIRE_THROWS_WITH(s.apply(other), Contains("4 features") && Contains("5"));
  }
}

TEST_CASE("the validation split is a seeded partition that keeps row order", "[dataset][split]") {
  const Dataset data = make_dataset(1000, 2, 4);
  const double fraction = GENERATE(0.1, 0.25, 0.5);
  CAPTURE(fraction);
  const auto [train, validation] = split_validation(data, fraction, 42);
  CHECK(validation.rows == std::llround(fraction * 1000));
  CHECK(train.rows + validation.rows == 1000);
  // Targets hold the original row index: together they are every row once, each part in order.
  std::set<float> seen;
  for (const Dataset* part : {&train, &validation}) {
    CHECK(std::is_sorted(part->targets.begin(), part->targets.end()));
    for (std::int64_t r = 0; r < part->rows; ++r) {
      const auto original = static_cast<std::int64_t>(part->targets[r]);
      CHECK(seen.insert(part->targets[r]).second);
      CHECK(part->features[r * 2] == data.features[original * 2]);
      CHECK(part->features[r * 2 + 1] == data.features[original * 2 + 1]);
    }
  }
  CHECK(seen.size() == 1000);

  SECTION("the same seed gives the same split, another seed another") {
    const auto again = split_validation(data, fraction, 42);
    CHECK(again.second.targets == validation.targets);
    const auto other = split_validation(data, fraction, 43);
    CHECK(other.second.targets != validation.targets);
  }
  SECTION("the held-out rows are spread over the file, not a block") {
    CHECK(validation.targets.front() < 100.0f);
    CHECK(validation.targets.back() > 900.0f);
  }
}

TEST_CASE("bad validation splits are rejected", "[dataset][split]") {
  const Dataset data = make_dataset(10, 2, 5);
  CHECK_THROWS_WITH(split_validation(data, 0.0, 1), Contains("(0, 1)"));
  CHECK_THROWS_WITH(split_validation(data, 1.0, 1), Contains("(0, 1)"));
  CHECK_THROWS_WITH(split_validation(make_dataset(1, 2, 5), 0.5, 1), Contains("2 rows"));
  const auto [train, validation] = split_validation(data, 0.01, 1);  // rounds to 0: at least 1
  CHECK(validation.rows == 1);
  CHECK(train.rows == 9);
}

TEST_CASE("class labels of another file are re-indexed to the training set's classes",
          "[dataset][classes]") {
  Dataset test;
  test.rows = 4;
  test.feature_count = 1;
  test.features = {1, 2, 3, 4};
  test.class_names = {"cat", "dog"};
  test.targets = {0, 1, 1, 0};
  use_class_names(test, {"bird", "cat", "dog"});
  CHECK(test.targets == std::vector<float>{1, 2, 2, 1});
  CHECK(test.class_names == std::vector<std::string>{"bird", "cat", "dog"});
  CHECK(test.class_count() == 3);

  SECTION("a label the training data never had is an error naming it") {
    Dataset unknown = test;
    unknown.class_names = {"cat", "fish"};
    unknown.targets = {0, 1, 0, 0};
    REQUIRE_THROWS_WITH(use_class_names(unknown, {"cat", "dog"}), Contains("'fish'"));
    CHECK(unknown.targets == std::vector<float>{0, 1, 0, 0});  // untouched
  }
}

TEST_CASE("validate names the first value that is not finite, wherever it lies",
          "[dataset][validate]") {
  // Large enough for the parallel check to split it; the bad values sit in different blocks.
  Dataset d;
  d.rows = 20000;
  d.feature_count = 7;
  d.target_width = 2;
  d.features.assign(static_cast<std::size_t>(d.rows) * d.feature_count, 0.5f);
  d.targets.assign(static_cast<std::size_t>(d.rows) * d.target_width, 1.0f);
  CHECK_NOTHROW(d.validate());
  const float bad =
      GENERATE(std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
               -std::numeric_limits<float>::infinity());
  SECTION("features: the lowest index wins") {
    d.features[139999] = bad;
    d.features[70003] = bad;  // row 10000, feature 3
    d.features[100000] = bad;
    CHECK_THROWS_WITH(d.validate(), "dataset: feature 3 of row 10000 is not finite");
  }
  SECTION("targets, once the features are finite") {
    d.targets[39999] = bad;  // row 19999, target 1
    CHECK_THROWS_WITH(d.validate(), "dataset: target 1 of row 19999 is not finite");
  }
  SECTION("the largest finite values pass") {
    d.features[5] = std::numeric_limits<float>::max();
    d.features[6] = -std::numeric_limits<float>::max();
    d.targets[0] = std::numeric_limits<float>::denorm_min();
    CHECK_NOTHROW(d.validate());
  }
}
