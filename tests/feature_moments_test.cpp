// FeatureMoments: standardization sums that give the same bits however the rows are split
// (parts merged in any order, stream chunks, threads), and stay accurate for a large offset.
#include <tbb/task_arena.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "data/feature_moments.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

using namespace shardprop;
using detail::FeatureMoments;

namespace {

// Columns: a plain normal one, a large offset with a small spread (mean 1e6, σ 1), a constant,
// a tiny spread, and one spanning many magnitudes.
constexpr int kFeatures = 5;

Dataset varied_dataset(std::int64_t rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Dataset d;
  d.rows = rows;
  d.feature_count = kFeatures;
  for (std::int64_t r = 0; r < rows; ++r) {
    d.features.push_back(static_cast<float>(3.0 * normal(rng) - 2.0));
    d.features.push_back(static_cast<float>(1e6 + normal(rng)));
    d.features.push_back(7.25f);
    d.features.push_back(static_cast<float>(1e-3 + 1e-6 * normal(rng)));
    d.features.push_back(static_cast<float>(std::exp(20.0 * normal(rng))));
    d.targets.push_back(0.0f);
  }
  return d;
}

Dataset rows_of(const Dataset& data, std::int64_t begin, std::int64_t end) {
  Dataset part;
  part.rows = end - begin;
  part.feature_count = data.feature_count;
  part.features.assign(data.features.begin() + begin * data.feature_count,
                       data.features.begin() + end * data.feature_count);
  part.targets.assign(data.targets.begin() + begin, data.targets.begin() + end);
  return part;
}

bool same_bits(const Standardization& a, const Standardization& b) {
  return a.mean.size() == b.mean.size() && a.scale.size() == b.scale.size() &&
         std::memcmp(a.mean.data(), b.mean.data(), a.mean.size() * sizeof(float)) == 0 &&
         std::memcmp(a.scale.data(), b.scale.data(), a.scale.size() * sizeof(float)) == 0;
}

// An in-memory dataset handed out `chunk_rows` rows at a time.
class ChunkedRows final : public DataStream {
 public:
  ChunkedRows(const Dataset& data, std::int64_t chunk_rows)
      : data_(data), chunk_rows_(chunk_rows) {}
  void rewind() override { next_row_ = 0; }
  bool next(Dataset& chunk) override {
    if (next_row_ >= data_.rows) return false;
    const std::int64_t end = std::min(next_row_ + chunk_rows_, data_.rows);
    chunk = rows_of(data_, next_row_, end);
    next_row_ = end;
    return true;
  }

 private:
  const Dataset& data_;
  std::int64_t chunk_rows_;
  std::int64_t next_row_ = 0;
};

}  // namespace

TEST_CASE("feature moments of parts merged in any order give the bits of the whole",
          "[standardization][determinism]") {
  const Dataset data = varied_dataset(3000, 1);
  const Standardization whole = Standardization::fit(data);
  FeatureMoments whole_moments(data.row_features(0));
  whole_moments.add(data);

  const int parts = GENERATE(range(1, 7));
  CAPTURE(parts);
  std::mt19937_64 rng(static_cast<std::uint64_t>(parts));
  for (int trial = 0; trial < 5; ++trial) {
    CAPTURE(trial);
    std::vector<std::int64_t> cuts{0, data.rows};
    for (int p = 1; p < parts; ++p) cuts.push_back(static_cast<std::int64_t>(rng() % 3001));
    std::sort(cuts.begin(), cuts.end());
    // Every part sums around the same shift, the whole dataset's first row.
    std::vector<FeatureMoments> moments;
    for (std::size_t p = 0; p + 1 < cuts.size(); ++p) {
      moments.emplace_back(data.row_features(0));
      moments.back().add(rows_of(data, cuts[p], cuts[p + 1]));
    }
    std::shuffle(moments.begin(), moments.end(), rng);
    // Half the parts arrive as words, as they would from another process.
    FeatureMoments merged(data.row_features(0));
    for (std::size_t p = 0; p < moments.size(); ++p) {
      merged.merge(p % 2 == 0 ? moments[p] : FeatureMoments::deserialize(moments[p].serialize()));
    }
    CHECK(merged.count() == data.rows);
    CHECK(merged.serialize() == whole_moments.serialize());
    CHECK(same_bits(merged.result(), whole));
  }
}

TEST_CASE("a streamed fit gives the bits of the in-memory fit", "[standardization][stream]") {
  const Dataset data = varied_dataset(2000, 2);
  const Standardization whole = Standardization::fit(data);

  SECTION("whatever the chunk size") {
    const std::int64_t chunk_rows = GENERATE(1, 7, 333, 2000, 5000);
    CAPTURE(chunk_rows);
    ChunkedRows stream(data, chunk_rows);
    CHECK(same_bits(Standardization::fit(stream), whole));
  }
  SECTION("from a CSV file read in small blocks") {
    std::string text = "a,b,c,d,e,y\n";
    char field[32];
    for (std::int64_t r = 0; r < data.rows; ++r) {
      for (const float x : data.row_features(r)) {
        std::snprintf(field, sizeof field, "%.9g,", static_cast<double>(x));  // round-trips
        text += field;
      }
      text += "0\n";
    }
    const test::TempDir directory;
    test::write_text(directory / "rows.csv", text);
    const Dataset read = read_csv(directory / "rows.csv");
    REQUIRE(read.features == data.features);
    CsvStream stream(directory / "rows.csv", CsvOptions{}, {}, 4096);
    CHECK(same_bits(Standardization::fit(stream), whole));
  }
}

TEST_CASE("feature moments do not depend on the thread count", "[standardization][determinism]") {
  // Several blocks of rows and of columns, so that the tasks do run on both threads.
  Dataset data;
  data.rows = 20000;
  data.feature_count = 70;
  std::mt19937_64 bits(5);
  for (std::int64_t i = 0; i < data.rows * data.feature_count; ++i) {
    data.features.push_back(test::uniform_pm1(bits) * static_cast<float>(1 + i % 70));
  }
  data.targets.assign(static_cast<std::size_t>(data.rows), 0.0f);
  std::vector<std::vector<std::uint64_t>> words;
  std::vector<Standardization> fits;
  for (const int threads : {1, 2}) {
    tbb::task_arena arena(threads);
    arena.execute([&] {
      FeatureMoments moments(data.row_features(0));
      moments.add(data);
      words.push_back(moments.serialize());
      fits.push_back(Standardization::fit(data));
    });
  }
  CHECK(words[0] == words[1]);
  CHECK(same_bits(fits[0], fits[1]));
}

TEST_CASE("standardization sums are accurate for a large offset and constant columns",
          "[standardization]") {
  const Dataset data = varied_dataset(5000, 3);
  const Standardization s = Standardization::fit(data);
  // Two passes in long double over the same floats.
  for (int j = 0; j < kFeatures; ++j) {
    CAPTURE(j);
    long double sum = 0.0L;
    for (std::int64_t r = 0; r < data.rows; ++r) sum += data.row_features(r)[j];
    const long double mean = sum / static_cast<long double>(data.rows);
    long double square = 0.0L;
    for (std::int64_t r = 0; r < data.rows; ++r) {
      const long double d = data.row_features(r)[j] - mean;
      square += d * d;
    }
    const auto deviation =
        static_cast<double>(std::sqrt(square / static_cast<long double>(data.rows)));
    // Within a float's rounding of the reference: the offset of 1e6 costs no digits.
    CHECK_THAT(s.mean[j], Catch::Matchers::WithinULP(static_cast<float>(mean), 1));
    if (j == 2) {
      CHECK(s.mean[j] == 7.25f);  // constant: the value itself, and no division by zero
      CHECK(s.scale[j] == 1.0f);
    } else {
      CHECK_THAT(s.scale[j], Catch::Matchers::WithinULP(static_cast<float>(deviation), 2));
    }
  }
  CHECK(s.scale[1] == Approx(1.0).epsilon(0.05));
}

TEST_CASE("feature moments reject sums that do not belong together", "[standardization]") {
  const Dataset data = varied_dataset(10, 4);
  FeatureMoments moments(data.row_features(0));

  SECTION("another feature count") {
    Dataset narrow = data;
    narrow.feature_count = 1;
    narrow.features.resize(10);
    CHECK_THROWS_WITH(moments.add(narrow), Catch::Matchers::Contains("1 features"));
  }
  SECTION("another shift") {
    const FeatureMoments other(data.row_features(1));
    CHECK_THROWS_WITH(moments.merge(other), Catch::Matchers::Contains("different shifts"));
  }
  SECTION("words of the wrong length or content") {
    moments.add(data);
    std::vector<std::uint64_t> words = moments.serialize();
    CHECK(words.size() == FeatureMoments::serialized_words(kFeatures));
    CHECK(words.size() == 2 + 5 + 2 * 5 * 68);
    std::vector<std::uint64_t> short_words(words.begin(), words.end() - 1);
    CHECK_THROWS_AS(FeatureMoments::deserialize(short_words), Error);
    words[2] = std::uint64_t{1} << 40;  // not a float's bits
    CHECK_THROWS_AS(FeatureMoments::deserialize(words), Error);
  }
  SECTION("no rows: the shift is the mean and the scale 1") {
    const Standardization s = moments.result();
    CHECK(moments.count() == 0);
    CHECK(s.mean == std::vector<float>(data.row_features(0).begin(), data.row_features(0).end()));
    CHECK(s.scale == std::vector<float>(kFeatures, 1.0f));
  }
}
