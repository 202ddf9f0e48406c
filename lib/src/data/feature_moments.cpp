// Exact per-feature sums: rows in blocks of columns, each block summed in its own task and merged
// under a lock, which is reproducible only because the merge is exact.
#include "data/feature_moments.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>

#include "shardprop/error.hpp"

namespace shardprop::detail {

namespace {

// A task sums kRowsPerBlock rows of kColumnsPerSlab columns: its sums (64 ExactSums, 35 KB) stay
// in the L1/L2 cache, and each row's slice is one or two cache lines.
constexpr std::int64_t kRowsPerBlock = 4096;
constexpr int kColumnsPerSlab = 32;

}  // namespace

FeatureMoments::FeatureMoments(std::span<const float> shift)
    : shift_(shift.begin(), shift.end()), columns_(shift.size()) {}

void FeatureMoments::add(const Dataset& rows) {
  const int n = feature_count();
  if (rows.feature_count != n) {
    throw Error("feature moments: the rows have " + std::to_string(rows.feature_count) +
                " features, the sums " + std::to_string(n));
  }
  if (rows.rows == 0 || n == 0) return;
  const std::int64_t row_blocks = (rows.rows + kRowsPerBlock - 1) / kRowsPerBlock;
  const int slabs = (n + kColumnsPerSlab - 1) / kColumnsPerSlab;
  std::vector<std::mutex> slab_locks(static_cast<std::size_t>(slabs));
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, row_blocks * slabs),
      [&](const tbb::blocked_range<std::int64_t>& tasks) {
        std::vector<ColumnSums> partial(kColumnsPerSlab);
        for (std::int64_t task = tasks.begin(); task != tasks.end(); ++task) {
          const auto slab = static_cast<int>(task % slabs);
          const int first_column = slab * kColumnsPerSlab;
          const int columns = std::min(kColumnsPerSlab, n - first_column);
          const std::int64_t first_row = task / slabs * kRowsPerBlock;
          const std::int64_t end_row = std::min(first_row + kRowsPerBlock, rows.rows);
          std::fill(partial.begin(), partial.end(), ColumnSums{});
          const float* shift = shift_.data() + first_column;
          for (std::int64_t r = first_row; r < end_row; ++r) {
            const float* x = rows.features.data() + r * n + first_column;
            for (int j = 0; j < columns; ++j) {
              const double deviation = static_cast<double>(x[j]) - shift[j];
              // Adding zero changes no exact sum; sparse data (image borders, one-hot columns)
              // is mostly values equal to the first row's.
              if (deviation == 0.0) continue;
              partial[j].deviation.add(deviation);
              partial[j].squared_deviation.add(deviation * deviation);
            }
          }
          const std::lock_guard lock(slab_locks[static_cast<std::size_t>(slab)]);
          for (int j = 0; j < columns; ++j) {
            columns_[first_column + j].deviation.merge(partial[j].deviation);
            columns_[first_column + j].squared_deviation.merge(partial[j].squared_deviation);
          }
        }
      });
  count_ += rows.rows;
}

void FeatureMoments::merge(const FeatureMoments& other) {
  const bool same_shift =
      shift_.size() == other.shift_.size() &&
      std::equal(shift_.begin(), shift_.end(), other.shift_.begin(), [](float a, float b) {
        return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
      });
  if (!same_shift) throw Error("feature moments: merging sums taken around different shifts");
  for (std::size_t j = 0; j < columns_.size(); ++j) {
    columns_[j].deviation.merge(other.columns_[j].deviation);
    columns_[j].squared_deviation.merge(other.columns_[j].squared_deviation);
  }
  count_ += other.count_;
}

std::size_t FeatureMoments::serialized_words(int feature_count) {
  const auto n = static_cast<std::size_t>(feature_count);
  return 2 + n + 2 * n * ExactSum::kSerializedWords;
}

std::vector<std::uint64_t> FeatureMoments::serialize() const {
  std::vector<std::uint64_t> words;
  words.reserve(serialized_words(feature_count()));
  words.push_back(shift_.size());
  words.push_back(static_cast<std::uint64_t>(count_));
  for (const float k : shift_) words.push_back(std::bit_cast<std::uint32_t>(k));
  for (const ColumnSums& column : columns_) {
    for (const ExactSum* sum : {&column.deviation, &column.squared_deviation}) {
      const auto sum_words = sum->serialize();
      words.insert(words.end(), sum_words.begin(), sum_words.end());
    }
  }
  return words;
}

FeatureMoments FeatureMoments::deserialize(std::span<const std::uint64_t> words) {
  if (words.size() < 2 || words[0] > static_cast<std::uint64_t>(std::numeric_limits<int>::max()) ||
      words.size() != serialized_words(static_cast<int>(words[0]))) {
    throw Error("feature moments: " + std::to_string(words.size()) +
                " serialized words do not hold a feature count and its sums");
  }
  const auto n = static_cast<std::size_t>(words[0]);
  const auto count = static_cast<std::int64_t>(words[1]);
  if (count < 0) throw Error("feature moments: the serialized row count is negative");
  std::vector<float> shift(n);
  for (std::size_t j = 0; j < n; ++j) {
    if (words[2 + j] > std::numeric_limits<std::uint32_t>::max()) {
      throw Error("feature moments: serialized shift " + std::to_string(j) + " is not a float");
    }
    shift[j] = std::bit_cast<float>(static_cast<std::uint32_t>(words[2 + j]));
  }
  FeatureMoments moments(shift);
  moments.count_ = count;
  const std::span<const std::uint64_t> sums = words.subspan(2 + n);
  constexpr std::size_t kWords = ExactSum::kSerializedWords;
  for (std::size_t j = 0; j < n; ++j) {
    moments.columns_[j].deviation =
        ExactSum::deserialize(sums.subspan(2 * j * kWords).first<kWords>());
    moments.columns_[j].squared_deviation =
        ExactSum::deserialize(sums.subspan((2 * j + 1) * kWords).first<kWords>());
  }
  return moments;
}

Standardization FeatureMoments::result() const {
  Standardization s;
  s.mean.resize(shift_.size());
  s.scale.resize(shift_.size());
  const auto n = static_cast<double>(count_);
  for (std::size_t j = 0; j < shift_.size(); ++j) {
    double mean_deviation = 0.0, variance = 0.0;
    if (count_ > 0) {
      mean_deviation = columns_[j].deviation.value() / n;
      variance =
          std::max(columns_[j].squared_deviation.value() / n - mean_deviation * mean_deviation,
                   0.0);  // population variance; rounding may dip below 0
    }
    s.mean[j] = static_cast<float>(shift_[j] + mean_deviation);
    // A constant column stays constant (0 after centring) instead of dividing by zero; the
    // test is on the float, which a tiny deviation can round to 0.
    const auto deviation = static_cast<float>(std::sqrt(variance));
    s.scale[j] = deviation > 0.0f && std::isfinite(deviation) ? deviation : 1.0f;
  }
  return s;
}

}  // namespace shardprop::detail
