// Exact per-feature sums of floats over rows in memory order (NaN, a missing value, left out),
// for the mean imputation: each thread keeps a FloatSums of its own and fold() merges them into
// ExactSums, so any split of the rows gives the same sums. Leaves out what the sums are for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/exact_sum.hpp"

namespace shardprop::detail {

// In each block of up to 256 rows, each feature's values are scaled by a power of two that
// makes those within 20 exponents of its largest value integers below 2^44, so the
// block's sum of them in double is exact (256 of them stay below 2^52) and goes to an ExactSum as
// one add; vector lanes do that work. A feature whose block holds an infinity, or a value too
// small for the window, is added value by value instead: a finite float is m·2^(E − 150) with
// |m| < 2^24 and E its biased exponent (1 for subnormals), so it keeps one int64 per exponent,
// which 2^39 adds cannot overflow, and fold() hands them to ExactSums.
class FloatSums {
 public:
  static constexpr std::size_t kExponents = 256;

  explicit FloatSums(std::size_t features);

  // Rows x[0 .. rows·n), n the feature count.
  void add_rows(const float* x, std::size_t rows);

  // Adds this object's counts of values that are not NaN, and their sums, to `counts` and `sums`
  // (one per feature).
  void fold(std::vector<ExactSum>& sums, std::vector<std::uint64_t>& counts) const;

 private:
  static constexpr std::uint8_t kPlusInfinity = 1;
  static constexpr std::uint8_t kMinusInfinity = 2;

  void add_block(const float* x, std::size_t rows);
  void add_value(std::size_t j, float x);

  std::vector<std::int64_t> buckets_;  // feature-major, kExponents per feature
  std::vector<std::uint64_t> counts_;
  std::vector<std::uint8_t> infinities_;
  std::vector<ExactSum> blocks_;  // per feature: the exact block sums
  // A block's scratch, per feature.
  std::vector<std::uint32_t> top_, present_;
  std::vector<double> scale_, sum_, inexact_;
};

}  // namespace shardprop::detail
