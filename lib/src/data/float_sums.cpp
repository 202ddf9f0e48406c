// FloatSums: the block kernel (compiled for AVX2 and the baseline) and the exact fallback.
#include "data/float_sums.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "base/simd.hpp"

namespace shardprop::detail {
namespace {

// Rows per block at most, the exponents a block's values may span for its double sum to be
// exact (256 values, each below 2^(24 + 20) units of the smallest one's exponent, sum below 2^52
// of them; 21 would still do), and the vector lanes the places are counted in.
constexpr std::size_t kMaxSumBlockRows = 256;
constexpr std::uint32_t kSumWindowExponents = 20;
constexpr std::size_t kSumLanes = 8;

// What block_sums leaves in `bottom` for a place without a nonzero value.
constexpr std::uint32_t kNoExponent = 255;

// For each place of `rows` rows of `width` places: the count of its values that are not NaN
// (`present`), their sum in double (`sum`), and the largest (`top`, 255 for an infinity) and
// smallest nonzero (`bottom`, 1 for subnormals) biased exponent among them; the caller sets
// top and present to 0, bottom to kNoExponent and sum to 0. The lanes run over places, never
// reassociating a place's sum. Vectors stay local: none is passed to or returned from a function,
// whose ABI would depend on AVX.
SHARDPROP_MULTIVERSION
void block_sums(const float* x, std::size_t rows, std::size_t width, std::uint32_t* top,
                std::uint32_t* bottom, std::uint32_t* present, double* sum) {
  using Lanes = std::int32_t __attribute__((vector_size(32)));
  // Half the lanes as floats, widened to doubles (one AVX2 register each).
  using HalfFloats = float __attribute__((vector_size(16)));
  using HalfDoubles = double __attribute__((vector_size(32)));
  static_assert(sizeof(Lanes) == kSumLanes * sizeof(std::int32_t));
  for (std::size_t r = 0; r < rows; ++r, x += width) {
    std::size_t f = 0;
    for (; f + kSumLanes <= width; f += kSumLanes) {
      Lanes bits, high, low, count;
      HalfDoubles total_low, total_high;
      std::memcpy(&bits, x + f, sizeof bits);
      std::memcpy(&high, top + f, sizeof high);
      std::memcpy(&low, bottom + f, sizeof low);
      std::memcpy(&count, present + f, sizeof count);
      std::memcpy(&total_low, sum + f, sizeof total_low);
      std::memcpy(&total_high, sum + f + kSumLanes / 2, sizeof total_high);
      const Lanes magnitude = bits & 0x7fffffff;
      const Lanes is = magnitude <= 0x7f800000;  // not NaN: all ones
      const Lanes exponent = magnitude >> 23;
      const Lanes nonzero_exponent = exponent > 1 ? exponent : 1;
      const Lanes counted = is & (magnitude != 0);
      high = high > (exponent & is) ? high : (exponent & is);
      const Lanes candidate = counted ? nonzero_exponent : Lanes{} + kNoExponent;
      low = low < candidate ? low : candidate;
      count -= is;
      const Lanes kept = bits & is;
      HalfFloats value_low, value_high;
      std::memcpy(&value_low, &kept, sizeof value_low);
      std::memcpy(&value_high, reinterpret_cast<const char*>(&kept) + sizeof value_low,
                  sizeof value_high);
      total_low += __builtin_convertvector(value_low, HalfDoubles);
      total_high += __builtin_convertvector(value_high, HalfDoubles);
      std::memcpy(top + f, &high, sizeof high);
      std::memcpy(bottom + f, &low, sizeof low);
      std::memcpy(present + f, &count, sizeof count);
      std::memcpy(sum + f, &total_low, sizeof total_low);
      std::memcpy(sum + f + kSumLanes / 2, &total_high, sizeof total_high);
    }
    for (; f < width; ++f) {
      const auto bits = std::bit_cast<std::uint32_t>(x[f]);
      const std::uint32_t magnitude = bits & 0x7fffffffu;
      if (magnitude > 0x7f800000u) continue;  // NaN: missing
      const std::uint32_t exponent = magnitude >> 23;
      top[f] = std::max(top[f], exponent);
      if (magnitude != 0) bottom[f] = std::min(bottom[f], std::max(exponent, 1u));
      ++present[f];
      sum[f] += static_cast<double>(x[f]);
    }
  }
}

}  // namespace

FloatSums::FloatSums(std::size_t features)
    : features_(features),
      group_(kSumLanes / std::gcd(std::max<std::size_t>(features, 1), kSumLanes)),
      buckets_(features * kExponents, 0),
      counts_(features, 0),
      infinities_(features, 0),
      blocks_(features),
      top_(features * group_),
      bottom_(features * group_),
      present_(features * group_),
      sum_(features * group_) {}

void FloatSums::add_rows(const float* x, std::size_t rows) {
  const std::size_t n = features_;
  if (n == 0) return;
  // Blocks of up to kMaxSumBlockRows wide rows, `group_` data rows each, while they last; the
  // remaining rows one by one.
  while (rows >= group_ && group_ > 1) {
    const std::size_t block = std::min(kMaxSumBlockRows, rows / group_);
    add_block(x, block, n * group_);
    x += block * group_ * n;
    rows -= block * group_;
  }
  while (rows > 0) {
    const std::size_t block = std::min(kMaxSumBlockRows, rows);
    add_block(x, block, n);
    x += block * n;
    rows -= block;
  }
}

void FloatSums::fold(std::vector<ExactSum>& sums, std::vector<std::uint64_t>& counts) const {
  for (std::size_t j = 0; j < counts_.size(); ++j) {
    counts[j] += counts_[j];
    sums[j].merge(blocks_[j]);
    if ((infinities_[j] & kPlusInfinity) != 0) sums[j].add(HUGE_VAL);
    if ((infinities_[j] & kMinusInfinity) != 0) sums[j].add(-HUGE_VAL);
    for (std::size_t exponent = 0; exponent < kExponents; ++exponent) {
      const std::int64_t m = buckets_[j * kExponents + exponent];
      if (m == 0) continue;
      // m·2^e as two exact doubles: its high bits (below 2^31 in magnitude) and its low 32.
      const int e = std::max<int>(static_cast<int>(exponent), 1) - 150;
      sums[j].add(std::ldexp(static_cast<double>(m >> 32), e + 32));
      sums[j].add(std::ldexp(static_cast<double>(m & 0xffffffff), e));
    }
  }
}

void FloatSums::add_block(const float* x, std::size_t rows, std::size_t width) {
  const std::size_t n = features_;
  std::fill_n(top_.begin(), width, 0u);
  std::fill_n(bottom_.begin(), width, kNoExponent);
  std::fill_n(present_.begin(), width, 0u);
  std::fill_n(sum_.begin(), width, 0.0);
  block_sums(x, rows, width, top_.data(), bottom_.data(), present_.data(), sum_.data());
  for (std::size_t place = 0; place < width; ++place) {
    const std::size_t j = place % n;
    const bool exact = top_[place] < 0xffu && (bottom_[place] == kNoExponent ||
                                               top_[place] <= bottom_[place] + kSumWindowExponents);
    if (!exact) [[unlikely]] {
      for (std::size_t r = 0; r < rows; ++r) add_value(j, x[r * width + place]);
      continue;
    }
    blocks_[j].add(sum_[place]);
    counts_[j] += present_[place];
  }
}

void FloatSums::add_value(std::size_t j, float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t exponent = (bits >> 23) & 0xffu;
  if (exponent == 0xffu) {
    if ((bits & 0x7fffffu) != 0) return;  // NaN: missing
    infinities_[j] |= (bits >> 31) != 0 ? kMinusInfinity : kPlusInfinity;
    ++counts_[j];
    return;
  }
  const auto magnitude =
      static_cast<std::int64_t>((bits & 0x7fffffu) | (std::uint32_t{exponent != 0} << 23));
  buckets_[j * kExponents + exponent] += (bits >> 31) != 0 ? -magnitude : magnitude;
  ++counts_[j];
}

}  // namespace shardprop::detail
