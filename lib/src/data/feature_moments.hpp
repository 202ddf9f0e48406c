// Per-feature sums for standardization, exact so that rows split across chunks, threads or
// processes in any way give the same bits. Sending the serialized sums between processes is the
// caller's business.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/exact_sum.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// For each feature column j, with a shift K_j: the row count n, S1 = Σ(x − K_j) and
// S2 = Σ(x − K_j)², each difference and square rounded once in double and then summed exactly.
// The shift is a data value (the first row), so S1/n is small next to a large offset and
// S2/n − (S1/n)² keeps the spread's digits. Parts to be merged must share the shift bitwise.
class FeatureMoments {
 public:
  explicit FeatureMoments(std::span<const float> shift);

  // Adds every row, in parallel over blocks of rows in the caller's tbb::task_arena; the sums
  // do not depend on the thread count. Throws Error if the feature count is not the shift's.
  void add(const Dataset& rows);
  // Throws Error unless `other` has the same shift (bitwise).
  void merge(const FeatureMoments& other);

  // [feature count, row count, the shift's float bits, then S1 and S2 of each feature as
  // ExactSum::serialize() writes them]: serialized_words(feature count) words.
  std::vector<std::uint64_t> serialize() const;
  static std::size_t serialized_words(int feature_count);
  // Throws Error if `words` is not what serialize() writes.
  static FeatureMoments deserialize(std::span<const std::uint64_t> words);

  std::int64_t count() const { return count_; }
  int feature_count() const { return static_cast<int>(shift_.size()); }
  // mean = K + S1/n; variance = S2/n − (S1/n)² (population, at least 0); scale = √variance, or
  // 1 for a constant column. No rows: mean K, scale 1.
  Standardization result() const;

 private:
  struct ColumnSums {
    ExactSum deviation;          // S1
    ExactSum squared_deviation;  // S2
  };

  std::vector<float> shift_;
  std::vector<ColumnSums> columns_;
  std::int64_t count_ = 0;
};

}  // namespace shardprop::detail
