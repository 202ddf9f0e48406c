// Missing values: each na_values token, each MissingPolicy against hand-computed values, read in
// memory, streamed at several block sizes and read in parts; the default error and a missing
// target; the imputation's model metadata; and train → predict / evaluate round trips.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/exact_sum.hpp"
#include "cli_runner.hpp"
#include "data/csv_cache.hpp"
#include "data/csv_part.hpp"
#include "data/float_sums.hpp"
#include "data/imputation_fit.hpp"
#include "data/median_fit.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/error.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/trained_model.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::CsvOptions;
using shardprop::CsvStream;
using shardprop::Dataset;
using shardprop::Imputation;
using shardprop::MissingPolicy;
using shardprop::read_csv;
using shardprop::TargetKind;
using shardprop::test::Run;
using shardprop::test::run_cli;
using shardprop::test::TempDir;
using shardprop::test::write_text;
using Path = std::filesystem::path;

// a: 1, 2, -, 10, 4 (mean 17/4, median (2 + 4)/2); b: -, 4, 6, -, 20 (mean 10, median 6).
constexpr const char* kSmall =
    "a,b,y\n"
    "1,NA,10\n"
    "2,4,20\n"
    ",6,30\n"
    "10,?,40\n"
    "4,20,50\n";

CsvOptions with_policy(MissingPolicy policy) {
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  options.missing = policy;
  return options;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void check_same_rows(const Dataset& a, const Dataset& b) {
  REQUIRE(a.rows == b.rows);
  REQUIRE(a.feature_count == b.feature_count);
  CHECK(same_bits(a.features, b.features));
  CHECK(same_bits(a.targets, b.targets));
  CHECK(a.class_names == b.class_names);
}

Dataset stream_all(const Path& path, const CsvOptions& options, std::size_t block_bytes,
                   std::vector<std::string> classes = {}) {
  CsvStream stream(path, options, std::move(classes), block_bytes);
  Dataset all, chunk;
  bool first = true;
  while (stream.next(chunk)) {
    REQUIRE(chunk.rows > 0);
    if (first) all = chunk;
    if (!first) {
      all.rows += chunk.rows;
      all.features.insert(all.features.end(), chunk.features.begin(), chunk.features.end());
      all.targets.insert(all.targets.end(), chunk.targets.begin(), chunk.targets.end());
    }
    first = false;
  }
  return all;
}

// The rows of read_csv_part's parts 0..parts-1, put together.
Dataset read_in_parts(const Path& path, const CsvOptions& options, int parts) {
  shardprop::detail::CsvPartScan sum;
  std::optional<Dataset> all;
  for (int p = 0; p < parts; ++p) {
    const shardprop::detail::CsvPart part =
        shardprop::detail::read_csv_part(path, options, p, parts, sum);
    const shardprop::detail::CsvPartScan scan =
        shardprop::detail::scan_csv_part(path, options, p, parts);
    sum.quotes += scan.quotes;
    sum.newlines += scan.newlines;
    if (!all) {
      all = part.data;
      continue;
    }
    all->rows += part.data.rows;
    all->features.insert(all->features.end(), part.data.features.begin(), part.data.features.end());
    all->targets.insert(all->targets.end(), part.data.targets.begin(), part.data.targets.end());
  }
  return *all;
}

// A seeded file of `rows` rows, 3 features and a target, about 15% of the feature cells and no
// target missing, with a few repeated values so that medians meet ties.
std::string random_csv(std::uint64_t seed, int rows) {
  std::mt19937_64 random(seed);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<int> small(-20, 20);
  std::normal_distribution<double> normal(3.0, 100.0);
  const char* tokens[] = {"", "NA", "?", "nan", "\"NA\"", " null "};
  std::string text = "x0,x1,x2,y\n";
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < 3; ++j) {
      if (percent(random) < 15) {
        text += tokens[percent(random) % 6];
      } else if (j == 1) {
        text += std::to_string(small(random));
      } else {
        char number[32];
        std::snprintf(number, sizeof number, "%.6g", normal(random));
        text += number;
      }
      text += ',';
    }
    text += std::to_string(r % 7) + "\n";
  }
  return text;
}

// Mean and median of each feature's values that are not NaN, computed plainly.
std::vector<double> reference(const Dataset& data, MissingPolicy policy) {
  std::vector<double> fill;
  for (int j = 0; j < data.feature_count; ++j) {
    std::vector<double> values;
    for (std::int64_t r = 0; r < data.rows; ++r) {
      const float x = data.features[static_cast<std::size_t>(r * data.feature_count + j)];
      if (!std::isnan(x)) values.push_back(x);
    }
    std::sort(values.begin(), values.end());
    const std::size_t n = values.size();
    double sum = 0.0;
    for (const double v : values) sum += v;
    fill.push_back(policy == MissingPolicy::mean ? sum / static_cast<double>(n)
                                                 : (values[(n - 1) / 2] + values[n / 2]) / 2.0);
  }
  return fill;
}

}  // namespace

TEST_CASE("each default na_values token is a missing value, quoted or not", "[csv][missing]") {
  const std::string token = GENERATE(as<std::string>{}, "", "NA", "N/A", "n/a", "NaN", "nan",
                                     "-nan", "NULL", "null", "None", "?", "#N/A", "<NA>");
  const std::string field = GENERATE(as<std::string>{}, "T", "\"T\"", "  T ", "\" T\"");
  std::string text = field;
  text.replace(text.find('T'), 1, token);
  CAPTURE(token, text);
  TempDir dir;
  write_text(dir / "m.csv", "a,b,y\n1,5,1\n" + text + ",6,2\n3,7,3\n");
  const Dataset data = read_csv(dir / "m.csv", with_policy(MissingPolicy::zero));
  REQUIRE(data.rows == 3);
  CHECK(data.features[0] == 1.0f);
  CHECK(std::isnan(data.features[2]));
  CHECK(data.features[3] == 6.0f);
  CHECK(data.features[4] == 3.0f);
}

TEST_CASE("a text that is not a token stays an error, and tokens can be replaced",
          "[csv][missing]") {
  TempDir dir;
  write_text(dir / "m.csv", "a,y\n1,1\nnA,2\n");
  CHECK_THROWS_WITH(read_csv(dir / "m.csv", with_policy(MissingPolicy::zero)),
                    Contains("m.csv:3:1 (column 1 'a'): 'nA' is not a number"));
  CsvOptions options = with_policy(MissingPolicy::zero);
  options.na_values = {"nA"};
  CHECK(std::isnan(read_csv(dir / "m.csv", options).features[1]));
  SECTION("without the empty token an empty field is an error again") {
    write_text(dir / "e.csv", "a,y\n,1\n");
    CHECK_THROWS_WITH(read_csv(dir / "e.csv", options),
                      Contains("e.csv:2:1 (column 1 'a'): empty field"));
  }
  SECTION("a token that is a number is refused") {
    options.na_values = {"NA", "-999"};
    CHECK_THROWS_WITH(read_csv(dir / "m.csv", options),
                      Contains("the missing-value token '-999' is a number"));
  }
  SECTION("with allow_non_finite nan is a value, which the error policy lets through") {
    write_text(dir / "n.csv", "a,y\nnan,1\n");
    CsvOptions values;
    values.allow_non_finite = true;
    CHECK(std::isnan(read_csv(dir / "n.csv", values).features[0]));
    CHECK_THROWS_WITH(read_csv(dir / "n.csv"), Contains("missing value 'nan'"));
  }
}

TEST_CASE("the default policy names the first missing cell and suggests --missing",
          "[csv][missing]") {
  TempDir dir;
  write_text(dir / "m.csv", kSmall);
  const std::string expected = (dir / "m.csv").string() +
                               ":2:3 (column 2 'b'): missing value 'NA' (CsvOptions::missing is "
                               "error); fill it in with --missing mean|median|zero or leave the "
                               "row out with --missing drop";
  CHECK_THROWS_WITH(read_csv(dir / "m.csv"), expected);
  for (const std::size_t block : {8, 16, 1 << 20}) {
    CHECK_THROWS_WITH(stream_all(dir / "m.csv", CsvOptions{}, block), expected);
  }
  write_text(dir / "e.csv", "a,b,y\n1,2,3\n4,,6\n");
  CHECK_THROWS_WITH(read_csv(dir / "e.csv"),
                    Contains("e.csv:3:3 (column 2 'b'): missing value ''"));
}

TEST_CASE("a missing target is an error under every policy but drop", "[csv][missing]") {
  TempDir dir;
  write_text(dir / "m.csv", "a,y\n1,2\n3,NA\n5,6\n");
  const MissingPolicy policy =
      GENERATE(MissingPolicy::error, MissingPolicy::mean, MissingPolicy::zero);
  CsvOptions options = with_policy(policy);
  const std::string expected = (dir / "m.csv").string() +
                               ":3:3 (column 2 'y'): missing target value 'NA': a missing target "
                               "cannot be filled in; leave the row out with --missing drop";
  CHECK_THROWS_WITH(read_csv(dir / "m.csv", options), expected);
  options.target_kind = TargetKind::automatic;
  CHECK_THROWS_WITH(read_csv(dir / "m.csv", options), expected);
  options.target_kind = TargetKind::classes;
  CHECK_THROWS_WITH(read_csv(dir / "m.csv", options), expected);
  CHECK_THROWS_WITH(stream_all(dir / "m.csv", with_policy(policy), 8), expected);
}

TEST_CASE("drop leaves out the rows with a missing feature or target", "[csv][missing]") {
  TempDir dir;
  write_text(dir / "m.csv", kSmall);
  const Dataset data = read_csv(dir / "m.csv", with_policy(MissingPolicy::drop));
  // Rows 1 and 4 (0-based) are the only complete ones.
  REQUIRE(data.rows == 2);
  CHECK(data.features == std::vector<float>{2, 4, 4, 20});
  CHECK(data.targets == std::vector<float>{20, 50});
  for (const std::size_t block : {1, 9, 16, 40, 1 << 20}) {
    CAPTURE(block);
    CsvStream stream(dir / "m.csv", with_policy(MissingPolicy::drop), {}, block);
    check_same_rows(stream_all(dir / "m.csv", with_policy(MissingPolicy::drop), block), data);
    Dataset chunk;
    while (stream.next(chunk)) {
    }
    CHECK(stream.dropped_rows() == 3);
  }
  for (int parts = 1; parts <= 3; ++parts) {
    CAPTURE(parts);
    check_same_rows(read_in_parts(dir / "m.csv", with_policy(MissingPolicy::drop), parts), data);
  }

  SECTION("class labels: a missing label drops its row and is no class") {
    write_text(dir / "c.csv", "a,y\n1,cat\n2,NA\n,dog\n4,dog\n5,\n6,cat\n");
    for (const TargetKind kind : {TargetKind::automatic, TargetKind::classes}) {
      CsvOptions options = with_policy(MissingPolicy::drop);
      options.target_kind = kind;
      const Dataset labels = read_csv(dir / "c.csv", options);
      CHECK(labels.class_names == std::vector<std::string>{"cat", "dog"});
      CHECK(labels.features == std::vector<float>{1, 4, 6});
      CHECK(labels.targets == std::vector<float>{0, 1, 0});
    }
    CsvOptions options = with_policy(MissingPolicy::drop);
    options.target_kind = TargetKind::classes;
    CHECK(shardprop::collect_class_names(dir / "c.csv", options) ==
          std::vector<std::string>{"cat", "dog"});
    check_same_rows(stream_all(dir / "c.csv", options, 7, {"cat", "dog"}),
                    read_csv(dir / "c.csv", options));
  }
}

TEST_CASE("mean, median and zero fill in hand-computed values", "[csv][missing]") {
  TempDir dir;
  write_text(dir / "m.csv", kSmall);
  const auto [policy, a, b] = GENERATE(table<MissingPolicy, float, float>({
      {MissingPolicy::mean, 4.25f, 10.0f},
      {MissingPolicy::median, 3.0f, 6.0f},
      {MissingPolicy::zero, 0.0f, 0.0f},
  }));
  CAPTURE(shardprop::to_string(policy));
  Dataset data = read_csv(dir / "m.csv", with_policy(policy));
  REQUIRE(data.rows == 5);
  CHECK(std::isnan(data.features[1]));
  CHECK(std::isnan(data.features[4]));
  CHECK(std::isnan(data.features[7]));

  const Imputation imputation = Imputation::fit(data, policy);
  CHECK(imputation.policy == policy);
  CHECK(imputation.fill == std::vector<float>{a, b});
  imputation.apply(data);
  CHECK(data.features == std::vector<float>{1, b, 2, 4, a, 6, 10, b, 4, 20});
  data.validate();

  SECTION("streamed at several block sizes") {
    for (const std::size_t block : {1, 12, 30, 1 << 20}) {
      CsvStream stream(dir / "m.csv", with_policy(policy), {}, block);
      CHECK(Imputation::fit(stream, policy).fill == std::vector<float>{a, b});
      stream.set_imputation(imputation);
      check_same_rows(stream_all(dir / "m.csv", with_policy(policy), 1 << 20), [&] {
        Dataset raw = read_csv(dir / "m.csv", with_policy(policy));
        return raw;
      }());
      Dataset chunk;
      std::vector<float> filled;
      while (stream.next(chunk)) {
        filled.insert(filled.end(), chunk.features.begin(), chunk.features.end());
      }
      CHECK(filled == data.features);
    }
  }
  SECTION("collectively over a whole-dataset part and a stream") {
    const Dataset raw = read_csv(dir / "m.csv", with_policy(policy));
    CHECK(shardprop::fit_imputation(shardprop::whole_dataset(raw), policy).fill == imputation.fill);
    CsvStream stream(dir / "m.csv", with_policy(policy), {}, 16);
    CHECK(shardprop::fit_imputation(stream, policy).fill == imputation.fill);
  }
}

TEST_CASE("median of odd and even counts, negatives and ties", "[csv][missing]") {
  TempDir dir;
  // a: -3, -1, -1, 7 (even: (-1 + -1)/2); b: 0.5, -2.25, 9 (odd: 0.5); c: 5 (alone).
  write_text(dir / "m.csv", "a,b,c,y\n-3,0.5,NA,1\n-1,-2.25,NA,2\n-1,9,5,3\n7,NA,NA,4\n");
  const Dataset data = read_csv(dir / "m.csv", with_policy(MissingPolicy::median));
  CHECK(Imputation::fit(data, MissingPolicy::median).fill == std::vector<float>{-1.0f, 0.5f, 5});
  CHECK(Imputation::fit(data, MissingPolicy::mean).fill ==
        std::vector<float>{0.5f, 7.25f / 3.0f, 5});
}

// The fit of `data`'s median with `sample` guiding it (or no sample), and the passes it took.
std::pair<std::vector<float>, int> median_with_sample(const Dataset& data,
                                                      const std::optional<Dataset>& sample) {
  shardprop::detail::ImputationRows rows;
  rows.features = data.feature_count;
  int passes = 0;
  rows.pass = [&](const std::function<void(const Dataset&)>& work) {
    ++passes;
    // In two chunks, as a stream would hand them over.
    Dataset head = data;
    Dataset tail = data;
    head.rows = data.rows / 2;
    tail.rows = data.rows - head.rows;
    const auto n = static_cast<std::ptrdiff_t>(data.feature_count);
    head.features.assign(data.features.begin(), data.features.begin() + head.rows * n);
    tail.features.assign(data.features.begin() + head.rows * n, data.features.end());
    work(head);
    work(tail);
  };
  if (sample) {
    rows.sample = [&](const std::function<void(const Dataset&)>& work) { work(*sample); };
  }
  rows.gather = [](const std::vector<std::uint64_t>& words) {
    return std::vector<std::vector<std::uint64_t>>{words};
  };
  return {shardprop::detail::fit_imputation(MissingPolicy::median, rows).fill, passes};
}

TEST_CASE("the median is exact whichever sample guides its search", "[csv][missing]") {
  // Three features of 20,001 rows: a wide normal with a few NaN, small integers whose middle
  // ranks sit inside long runs of ties, and five neighbouring floats (1 and the next four up)
  // with an even count, whose two middle values differ in their last bits.
  Dataset data;
  data.feature_count = 3;
  data.rows = 20001;
  std::mt19937_64 random(11);
  std::normal_distribution<float> normal(-4.0f, 1000.0f);
  std::uniform_int_distribution<int> small(-3, 3);
  std::uniform_int_distribution<std::uint32_t> ulps(0, 4);
  for (std::int64_t r = 0; r < data.rows; ++r) {
    data.features.push_back(r % 97 == 0 ? std::numeric_limits<float>::quiet_NaN() : normal(random));
    data.features.push_back(static_cast<float>(small(random)));
    data.features.push_back(r % 97 == 50 || r == 1
                                ? std::numeric_limits<float>::quiet_NaN()
                                : std::bit_cast<float>(0x3f800000u + ulps(random)));
  }
  const std::vector<double> expected = reference(data, MissingPolicy::median);
  std::vector<float> want(expected.begin(), expected.end());
  Dataset sorted = data;
  for (int j = 0; j < 3; ++j) {
    std::vector<float> column;
    for (std::int64_t r = 0; r < data.rows; ++r) column.push_back(data.features[r * 3 + j]);
    std::sort(column.begin(), column.end(),
              [](float a, float b) { return std::isnan(b) ? !std::isnan(a) : a < b; });
    for (std::int64_t r = 0; r < data.rows; ++r) sorted.features[r * 3 + j] = column[r];
  }

  SECTION("a sample of every row brackets the middle: one pass") {
    const auto [fill, passes] = median_with_sample(data, data);
    CHECK(same_bits(fill, want));
    CHECK(passes == 1);
  }
  SECTION("a sample spread over the rows brackets the middle: one pass") {
    const auto [fill, passes] = median_with_sample(data, shardprop::detail::sample_rows(data));
    CHECK(same_bits(fill, want));
    CHECK(passes == 1);
  }
  // Rows [first, first + count) of `from`, features only.
  const auto rows_of = [](const Dataset& from, std::int64_t first, std::int64_t count) {
    Dataset rows;
    rows.feature_count = from.feature_count;
    rows.rows = count;
    rows.features.assign(from.features.begin() + first * from.feature_count,
                         from.features.begin() + (first + count) * from.feature_count);
    return rows;
  };
  SECTION("rows from one end of sorted data miss it: the radix selection's four passes follow") {
    const std::int64_t first = GENERATE(0, 19000);
    CAPTURE(first);
    const auto [fill, passes] = median_with_sample(sorted, rows_of(sorted, first, 500));
    CHECK(same_bits(fill, want));
    CHECK(passes == 5);
  }
  SECTION("without a sample, or with an empty one, the radix selection runs alone") {
    Dataset empty;
    empty.feature_count = 3;
    const auto [fill, passes] = median_with_sample(
        data, GENERATE_COPY(std::optional<Dataset>{}, std::optional<Dataset>{empty}));
    CHECK(same_bits(fill, want));
    CHECK(passes == 4);
  }
}

TEST_CASE("a feature with no value cannot be fit and is named", "[csv][missing]") {
  TempDir dir;
  write_text(dir / "m.csv", "a,b,y\n1,NA,1\n2,,2\n");
  const Dataset data = read_csv(dir / "m.csv", with_policy(MissingPolicy::mean));
  for (const MissingPolicy policy : {MissingPolicy::mean, MissingPolicy::median}) {
    CHECK_THROWS_WITH(Imputation::fit(data, policy), Contains("feature 2 'b' has no value"));
  }
  CHECK(Imputation::fit(data, MissingPolicy::zero).fill == std::vector<float>{0, 0});
  CHECK(Imputation::fit(data, MissingPolicy::drop).fill.empty());
}

TEST_CASE("the mean fill is the exact mean of floats of every magnitude and sign",
          "[csv][missing]") {
  // Random bit patterns reach every exponent, subnormals included; the reference adds each
  // value to an exact accumulator one by one.
  std::mt19937 bits(11);
  const int features = 3;
  const std::int64_t rows = 5000;
  shardprop::Dataset data;
  data.rows = rows;
  data.feature_count = features;
  data.features.resize(static_cast<std::size_t>(rows * features));
  std::vector<shardprop::detail::ExactSum> sums(features);
  std::vector<double> counts(features, 0.0);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < features; ++j) {
      float x = std::bit_cast<float>(static_cast<std::uint32_t>(bits()));
      if (j == 1) x = std::ldexp(x, -60);  // tiny values, many subnormal
      if (std::isinf(x)) x = std::numeric_limits<float>::max();
      if (r % 13 == 0) x = std::numeric_limits<float>::quiet_NaN();
      data.features[static_cast<std::size_t>(r * features + j)] = x;
      if (std::isnan(x)) continue;
      sums[static_cast<std::size_t>(j)].add(x);
      ++counts[static_cast<std::size_t>(j)];
    }
  }
  const shardprop::Imputation fit = shardprop::Imputation::fit(data, MissingPolicy::mean);
  REQUIRE(fit.fill.size() == static_cast<std::size_t>(features));
  for (int j = 0; j < features; ++j) {
    CAPTURE(j);
    const auto expected = static_cast<float>(sums[static_cast<std::size_t>(j)].value() /
                                             counts[static_cast<std::size_t>(j)]);
    CHECK(std::bit_cast<std::uint32_t>(fit.fill[static_cast<std::size_t>(j)]) ==
          std::bit_cast<std::uint32_t>(expected));
  }
  SECTION("an infinity makes the mean infinite, both signs NaN") {
    data.features[3] = std::numeric_limits<float>::infinity();
    data.features[4] = std::numeric_limits<float>::infinity();
    data.features[7] = -std::numeric_limits<float>::infinity();
    const shardprop::Imputation infinite = shardprop::Imputation::fit(data, MissingPolicy::mean);
    CHECK(infinite.fill[0] == std::numeric_limits<float>::infinity());
    CHECK(std::isnan(infinite.fill[1]));
  }
}

TEST_CASE("FloatSums sums exactly however widely a block's values spread", "[csv][missing]") {
  // A block's values go to its double sum only when they span few enough exponents for that sum
  // to be exact; the rest are added value by value. Each spread below is given to features of
  // full random mantissas (the low bits are what an inexact sum would lose), in row counts that
  // make whole and partial blocks, and its exact sums compared word for word with adding each
  // value to an ExactSum alone.
  const int spread = GENERATE(0, 19, 20, 21, 22, 23, 24, 26, 30, 60, 250);
  const int features = GENERATE(1, 3, 8, 15);
  const std::size_t rows = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{2100});
  CAPTURE(spread, features, rows);
  std::mt19937 random(static_cast<unsigned>(spread * 1000 + features));
  std::vector<float> x(rows * static_cast<std::size_t>(features));
  std::vector<shardprop::detail::ExactSum> expected(static_cast<std::size_t>(features));
  std::vector<std::uint64_t> expected_counts(static_cast<std::size_t>(features), 0);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const auto mantissa = static_cast<std::uint32_t>(random()) & 0x7fffffu;
    // Half the values at the top exponent and even features of one sign, for sums as large as
    // the spread allows.
    const std::uint32_t exponent =
        1 + (random() % 2 == 0 ? spread : static_cast<std::uint32_t>(random() % (spread + 1)));
    const std::uint32_t sign =
        (i % static_cast<std::size_t>(features)) % 2 == 0 || random() % 2 == 0 ? 0u : 0x80000000u;
    float value = std::bit_cast<float>(sign | exponent << 23 | mantissa);
    if (i % 17 == 3) value = 0.0f;
    if (i % 29 == 5) value = -0.0f;
    if (i % 31 == 7) value = std::numeric_limits<float>::quiet_NaN();
    if (i % 37 == 11 && spread > 0) value = std::bit_cast<float>(sign | mantissa);  // subnormal
    x[i] = value;
    if (std::isnan(value)) continue;
    expected[i % static_cast<std::size_t>(features)].add(value);
    ++expected_counts[i % static_cast<std::size_t>(features)];
  }
  shardprop::detail::FloatSums sums(static_cast<std::size_t>(features));
  sums.add_rows(x.data(), rows);
  std::vector<shardprop::detail::ExactSum> got(static_cast<std::size_t>(features));
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(features), 0);
  sums.fold(got, counts);
  CHECK(counts == expected_counts);
  for (int j = 0; j < features; ++j) {
    CAPTURE(j);
    CHECK(got[static_cast<std::size_t>(j)].serialize() ==
          expected[static_cast<std::size_t>(j)].serialize());
  }
}

TEST_CASE("apply fills exactly the NaN cells, each with its feature's fill", "[csv][missing]") {
  // Rows are filled side by side in vector lanes, the rows after the last whole group one by
  // one: every feature count and row count fills the same cells.
  const int features = GENERATE(1, 3, 8, 15);
  const std::int64_t rows = GENERATE(1, 7, 8, 1001);
  CAPTURE(features, rows);
  std::mt19937 random(static_cast<unsigned>(features * 10000 + rows));
  Dataset data;
  data.rows = rows;
  data.feature_count = features;
  Imputation imputation{MissingPolicy::mean, {}};
  for (int j = 0; j < features; ++j) imputation.fill.push_back(100.0f + static_cast<float>(j));
  const float negative_nan = std::bit_cast<float>(0xffc00000u);
  const float kinds[] = {1.5f,
                         -0.0f,
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(),
                         std::numeric_limits<float>::quiet_NaN(),
                         negative_nan};
  for (std::int64_t i = 0; i < rows * features; ++i) data.features.push_back(kinds[random() % 6]);
  std::vector<float> expected = data.features;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (std::isnan(expected[i]))
      expected[i] = imputation.fill[i % static_cast<std::size_t>(features)];
  }
  imputation.apply(data);
  CHECK(same_bits(data.features, expected));
}

TEST_CASE("imputation fits are exact: the same bits in memory, streamed and in parts",
          "[csv][missing]") {
  TempDir dir;
  write_text(dir / "r.csv", random_csv(7, 3000));
  const MissingPolicy policy = GENERATE(MissingPolicy::mean, MissingPolicy::median);
  CAPTURE(shardprop::to_string(policy));
  const Dataset data = read_csv(dir / "r.csv", with_policy(policy));
  const Imputation fit = Imputation::fit(data, policy);
  const std::vector<double> expected = reference(data, policy);
  for (std::size_t j = 0; j < expected.size(); ++j) {
    if (policy == MissingPolicy::median) {
      CHECK(fit.fill[j] == static_cast<float>(expected[j]));
    } else {
      CHECK_THAT(fit.fill[j], Catch::Matchers::WithinRel(static_cast<float>(expected[j]), 1e-6f));
    }
  }
  for (const std::size_t block : {100, 4096, 1 << 20}) {
    CAPTURE(block);
    CsvStream stream(dir / "r.csv", with_policy(policy), {}, block);
    CHECK(same_bits(Imputation::fit(stream, policy).fill, fit.fill));
  }
  for (int parts = 1; parts <= 3; ++parts) {
    CAPTURE(parts);
    const Dataset joined = read_in_parts(dir / "r.csv", with_policy(policy), parts);
    check_same_rows(joined, data);
    CHECK(same_bits(Imputation::fit(joined, policy).fill, fit.fill));
  }
  // Rows in another order: the same statistics.
  Dataset reversed = data;
  for (std::int64_t r = 0; r < data.rows; ++r) {
    std::copy_n(data.features.begin() + (data.rows - 1 - r) * 3, 3,
                reversed.features.begin() + r * 3);
  }
  CHECK(same_bits(Imputation::fit(reversed, policy).fill, fit.fill));
}

TEST_CASE("the imputation round-trips through model metadata and is validated",
          "[csv][missing][run_metadata]") {
  TempDir dir;
  shardprop::Model model(shardprop::ModelSpec::mlp(
      2, std::vector<int>{4}, 1, shardprop::Activation::relu, shardprop::Loss::mse));
  model.initialize(1);
  shardprop::RunMetadata m;
  m.settings = "{}";
  m.imputation = {MissingPolicy::median, {1.5f, -0.1f}};
  m.na_values = {"", "missing"};
  shardprop::save_safetensors(model, dir / "m.st", shardprop::run_metadata_entries(m));
  const shardprop::TrainedModel trained = shardprop::load_trained_model(dir / "m.st");
  CHECK(trained.imputation.policy == MissingPolicy::median);
  CHECK(trained.imputation.fill == std::vector<float>{1.5f, -0.1f});
  CHECK(trained.na_values == std::vector<std::string>{"", "missing"});
  const shardprop::RunMetadata read = shardprop::read_run_metadata(trained, "m.st");
  CHECK(read.imputation.fill == m.imputation.fill);
  CHECK(read.na_values == m.na_values);

  SECTION("the default is not written, and a file without the key reads as the default") {
    shardprop::RunMetadata plain;
    CHECK_FALSE(shardprop::run_metadata_entries(plain).contains(shardprop::kImputationKey));
    shardprop::save_safetensors(model, dir / "p.st", shardprop::run_metadata_entries(plain));
    const shardprop::TrainedModel p = shardprop::load_trained_model(dir / "p.st");
    CHECK(p.imputation.policy == MissingPolicy::error);
    CHECK(p.imputation.fill.empty());
    CHECK(p.na_values == CsvOptions{}.na_values);
  }
  SECTION("malformed entries name the file and the key") {
    const auto [text, message] = GENERATE(table<std::string, std::string>({
        {R"({"policy":"average","na_values":[],"fill":[]})", "unknown missing-value policy"},
        {R"({"policy":"mean","na_values":[],"fill":[1]})", "'fill' has 1 values"},
        {R"({"policy":"mean","na_values":[1],"fill":[1,2]})", "not a string"},
        {R"({"policy":"drop","na_values":[],"fill":[1,2]})", "fills nothing in"},
        {R"({"policy":"zero","na_values":[]})", "expected an array 'fill'"},
        {R"([1])", "expected a JSON object"},
    }));
    std::map<std::string, std::string> entries = shardprop::run_metadata_entries(m);
    entries[shardprop::kImputationKey] = text;
    shardprop::save_safetensors(model, dir / "bad.st", entries);
    CHECK_THROWS_WITH(shardprop::load_trained_model(dir / "bad.st"),
                      Contains("metadata 'shardprop.imputation'") && Contains(message));
  }
}

namespace {

// id, x1, x2, y = 2·x1 − x2; with_missing: x1 is NA in rows r ≡ 1 (mod 5) and x2 empty in
// rows r ≡ 3 (mod 7).
std::string regression_csv(std::uint64_t seed, int rows, bool with_missing) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::string text = "id,x1,x2,y\n";
  for (int r = 0; r < rows; ++r) {
    const double x1 = normal(random), x2 = normal(random);
    char number[3][32];
    std::snprintf(number[0], sizeof number[0], "%.4f", x1);
    std::snprintf(number[1], sizeof number[1], "%.4f", x2);
    std::snprintf(number[2], sizeof number[2], "%.4f", 2 * x1 - x2);
    const std::string first = with_missing && r % 5 == 1 ? "NA" : number[0];
    const std::string second = with_missing && r % 7 == 3 ? "" : number[1];
    text += std::to_string(r) + "," + first + "," + second + "," + number[2] + "\n";
  }
  return text;
}

std::string float_text(float value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", static_cast<double>(value));
  return text;
}

}  // namespace

TEST_CASE("train with --missing, then predict a file with missing cells", "[cli][missing]") {
  TempDir dir;
  write_text(dir / "train.csv", regression_csv(3, 300, true));
  const std::string test = regression_csv(4, 40, true);
  write_text(dir / "test.csv", test);
  const std::string policy = GENERATE(as<std::string>{}, "mean", "median", "zero");
  CAPTURE(policy);
  const Run train = run_cli(dir, {"train", "--data", "train.csv", "--ignore", "id", "--layers", "4",
                                  "--epochs", "2", "--missing", policy, "--out", "m.st"});
  INFO(train.err);
  REQUIRE(train.exit_code == 0);
  const shardprop::TrainedModel trained = shardprop::load_trained_model(dir / "m.st");
  REQUIRE(trained.imputation.fill.size() == 2);
  if (policy == "zero") CHECK(trained.imputation.fill == std::vector<float>{0, 0});
  const Run info = run_cli(dir, {"info", "m.st"});
  CHECK_THAT(info.out, Contains("missing:     " + policy));

  // The same file with the fill values written in predicts the same.
  std::string filled;
  for (const std::string& line : shardprop::test::lines_of(test)) {
    std::vector<std::string> fields;
    std::size_t begin = 0;
    for (std::size_t comma; (comma = line.find(',', begin)) != std::string::npos;
         begin = comma + 1) {
      fields.push_back(line.substr(begin, comma - begin));
    }
    fields.push_back(line.substr(begin));
    for (std::size_t j = 1; j <= 2 && line != "id,x1,x2,y"; ++j) {
      if (fields[j] == "NA" || fields[j].empty())
        fields[j] = float_text(trained.imputation.fill[j - 1]);
    }
    filled += fields[0] + "," + fields[1] + "," + fields[2] + "," + fields[3] + "\n";
  }
  write_text(dir / "filled.csv", filled);
  REQUIRE(run_cli(dir, {"predict", "--model", "m.st", "--data", "test.csv", "--output", "a.csv"})
              .exit_code == 0);
  REQUIRE(run_cli(dir, {"predict", "--model", "m.st", "--data", "filled.csv", "--output", "b.csv"})
              .exit_code == 0);
  CHECK(shardprop::test::read_text(dir / "a.csv") == shardprop::test::read_text(dir / "b.csv"));

  SECTION("--na-values on predict overrides the model's tokens") {
    const Run run = run_cli(dir, {"predict", "--model", "m.st", "--data", "test.csv", "--output",
                                  "c.csv", "--na-values", "NA"});
    CHECK(run.exit_code != 0);
    CHECK_THAT(run.err, Contains("test.csv:5:") && Contains("(column 3 'x2'): empty field"));
  }
}

TEST_CASE("a drop model: evaluate leaves rows out, predict refuses them", "[cli][missing]") {
  TempDir dir;
  write_text(dir / "train.csv", regression_csv(3, 300, true));
  write_text(dir / "test.csv", regression_csv(4, 40, true));
  write_text(dir / "clean.csv", regression_csv(4, 40, false));
  const Run train = run_cli(dir, {"train", "--data", "train.csv", "--ignore", "id", "--layers", "4",
                                  "--epochs", "2", "--missing", "drop", "--out", "m.st"});
  INFO(train.err);
  REQUIRE(train.exit_code == 0);
  // Rows 1, 3, 6, 10, 11, 16, 17, 21, 24, 26, 31, 36, 38 of 40 have a missing cell: 13.
  const Run evaluate =
      run_cli(dir, {"evaluate", "--model", "m.st", "--data", "test.csv", "--json"});
  INFO(evaluate.err);
  REQUIRE(evaluate.exit_code == 0);
  const nlohmann::json report = nlohmann::json::parse(evaluate.out);
  CHECK(report["dropped_rows"] == 13);
  CHECK(report["rows"] == 27);
  const Run text = run_cli(dir, {"evaluate", "--model", "m.st", "--data", "test.csv"});
  CHECK_THAT(text.out, Contains("13 rows with missing values left out"));

  const Run predict =
      run_cli(dir, {"predict", "--model", "m.st", "--data", "test.csv", "--output", "p.csv"});
  CHECK(predict.exit_code != 0);
  CHECK_THAT(predict.err, Contains("test.csv:3:3 (column 2 'x1'): missing value 'NA': the model "
                                   "was trained with --missing drop"));
  CHECK_FALSE(std::filesystem::exists(dir / "p.csv"));
  CHECK(run_cli(dir, {"predict", "--model", "m.st", "--data", "clean.csv", "--output", "p.csv"})
            .exit_code == 0);
}

TEST_CASE("train names the first missing cell by default and a missing target always",
          "[cli][missing]") {
  TempDir dir;
  write_text(dir / "train.csv", regression_csv(3, 50, true));
  const Run run = run_cli(dir, {"train", "--data", "train.csv", "--epochs", "1", "--out", "m.st"});
  CHECK(run.exit_code != 0);
  CHECK_THAT(run.err, Contains("train.csv:3:3 (column 2 'x1'): missing value 'NA' "
                               "(CsvOptions::missing is error); fill it in with --missing"));
  write_text(dir / "target.csv", "x,y\n1,2\n2,NA\n3,4\n4,5\n");
  const Run target = run_cli(dir, {"train", "--data", "target.csv", "--missing", "mean", "--epochs",
                                   "1", "--out", "t.st"});
  CHECK(target.exit_code != 0);
  CHECK_THAT(target.err, Contains("missing target value 'NA'"));
  const Run dropped = run_cli(dir, {"train", "--data", "target.csv", "--missing", "drop",
                                    "--epochs", "1", "--batch-size", "2", "--out", "t.st"});
  INFO(dropped.err);
  CHECK(dropped.exit_code == 0);
  SECTION("drop that leaves no row says why") {
    write_text(dir / "gaps.csv", "x,z,y\n1,NA,2\nNA,3,4\n");
    const bool streamed = GENERATE(false, true);
    CAPTURE(streamed);
    std::vector<std::string> args{"train",    "--data", "gaps.csv", "--missing", "drop",
                                  "--epochs", "1",      "--out",    "g.st"};
    if (streamed) args.emplace_back("--stream");
    const Run none = run_cli(dir, args);
    CHECK(none.exit_code != 0);
    CHECK_THAT(none.err, Contains("gaps.csv: no data rows (--missing drop leaves out every row "
                                  "with a missing value; fill them in with --missing "
                                  "mean|median|zero instead)"));
  }
}

TEST_CASE("the cache keeps missing cells as read and keys on the policy and tokens",
          "[csv][missing][cache]") {
  TempDir dir;
  write_text(dir / "m.csv", kSmall);
  const CsvOptions mean = with_policy(MissingPolicy::mean);
  const Dataset read = read_csv(dir / "m.csv", mean);
  for (int pass = 0; pass < 2; ++pass) {  // parsed and stored, then loaded from the cache
    CAPTURE(pass);
    check_same_rows(shardprop::read_csv_cached(dir / "m.csv", mean), read);
  }
  CsvOptions other = mean;
  other.na_values = {"NA", "?", ""};
  CHECK(shardprop::detail::csv_cache_path(dir / "m.csv", other, {}) !=
        shardprop::detail::csv_cache_path(dir / "m.csv", mean, {}));
  CHECK(shardprop::detail::csv_cache_path(dir / "m.csv", with_policy(MissingPolicy::drop), {}) !=
        shardprop::detail::csv_cache_path(dir / "m.csv", mean, {}));
  check_same_rows(shardprop::read_csv_cached(dir / "m.csv", with_policy(MissingPolicy::drop)),
                  read_csv(dir / "m.csv", with_policy(MissingPolicy::drop)));
}
