// Exact per-feature sums of floats over rows in memory order (NaN, a missing value, left out),
// for the mean imputation: each thread keeps a FloatSums of its own and fold() merges them into
// ExactSums, so any split of the rows gives the same sums. Leaves out what the sums are for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/exact_sum.hpp"

namespace shardprop::detail {

// Rows are taken in blocks of up to 256, laid side by side (as many as make a multiple of the
// vector lanes) so that one pass over a block gives, per place, the count of values that are not
// NaN, their sum in double, and the largest and smallest exponent among them. A float is an
// integer multiple of 2^(E − 150), E its biased exponent (1 for subnormals), below 2^(E − 126):
// when a place's values span at most 20 exponents (zeros aside), each is a multiple of the
// smallest one's unit and 256 of them stay below 2^53 of it, so the double sum is exact and goes
// to an ExactSum as one add. A place whose block holds an infinity or a wider span is added value
// by value instead: a finite float is m·2^(E − 150) with |m| < 2^24, so it keeps one int64 per
// exponent, which 2^39 adds cannot overflow, and fold() hands them to ExactSums.
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

  // `rows` rows of `width` places (a multiple of the feature count) at x.
  void add_block(const float* x, std::size_t rows, std::size_t width);
  void add_value(std::size_t j, float x);

  std::size_t features_;
  std::size_t group_;                  // rows side by side in a wide block
  std::vector<std::int64_t> buckets_;  // feature-major, kExponents per feature
  std::vector<std::uint64_t> counts_;
  std::vector<std::uint8_t> infinities_;
  std::vector<ExactSum> blocks_;  // per feature: the exact block sums
  // A block's scratch, per place.
  std::vector<std::uint32_t> top_, bottom_, present_;
  std::vector<double> sum_;
};

}  // namespace shardprop::detail
