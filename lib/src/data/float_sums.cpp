// FloatSums: the block kernels (compiled for AVX2 and the baseline) and the exact fallback.
#include "data/float_sums.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "base/simd.hpp"

namespace shardprop::detail {
namespace {

// Rows per block of FloatSums::add_rows at most (about 32 KB of rows per block, for the second
// read to find them in cache), and the bits a block's scaled values may span: 256 of them, each
// below 2^(24 + 20), sum exactly below 2^52.
constexpr std::size_t kMaxSumBlockRows = 256;
constexpr int kSumWindowBits = 20;

// 2^e as a double, for |e| < 1023.
double power_of_two(int e) {
  return std::bit_cast<double>(static_cast<std::uint64_t>(1023 + e) << 52);
}

// For each feature of a block of rows: the largest biased exponent among its values (NaN left
// out, so 255 means an infinity) and the count of its values that are not NaN, added to `top`
// and `present` (zeroed by the caller).
SHARDPROP_MULTIVERSION
void block_exponents(const float* x, std::size_t rows, std::size_t n, std::uint32_t* top,
                     std::uint32_t* present) {
  for (std::size_t r = 0; r < rows; ++r, x += n) {
    for (std::size_t f = 0; f < n; ++f) {
      const auto bits = std::bit_cast<std::uint32_t>(x[f]);
      const bool is = (bits & 0x7fffffffu) <= 0x7f800000u;  // not NaN
      const std::uint32_t exponent = is ? (bits >> 23) & 0xffu : 0u;
      top[f] = std::max(top[f], exponent);
      present[f] += is ? 1u : 0u;
    }
  }
}

// For each feature of a block: the sum of its values times scale[f] (NaN as 0), in double, and
// in `inexact` the sum of the scaled values' distances from an integer (0: every scaled value,
// and so the sum, is an exact integer). Added to `sum` and `inexact` (zeroed by the caller).
SHARDPROP_MULTIVERSION
void block_scaled_sums(const float* x, std::size_t rows, std::size_t n, const double* scale,
                       double* sum, double* inexact) {
  constexpr double kRound = 0x1.8p52;  // (d + kRound) − kRound rounds |d| < 2^51 to an integer
  for (std::size_t r = 0; r < rows; ++r, x += n) {
    for (std::size_t f = 0; f < n; ++f) {
      const auto bits = std::bit_cast<std::uint32_t>(x[f]);
      const std::uint32_t keep = (bits & 0x7fffffffu) <= 0x7f800000u ? 0xffffffffu : 0u;
      const double d = static_cast<double>(std::bit_cast<float>(bits & keep)) * scale[f];
      const double rounded = (d + kRound) - kRound;
      sum[f] += d;
      inexact[f] += std::fabs(rounded - d);
    }
  }
}

}  // namespace

FloatSums::FloatSums(std::size_t features)
    : buckets_(features * kExponents, 0),
      counts_(features, 0),
      infinities_(features, 0),
      blocks_(features),
      top_(features),
      present_(features),
      scale_(features),
      sum_(features),
      inexact_(features) {}

void FloatSums::add_rows(const float* x, std::size_t rows) {
  const std::size_t n = counts_.size();
  const std::size_t block =
      std::clamp<std::size_t>(8192 / std::max<std::size_t>(n, 1), 1, kMaxSumBlockRows);
  for (std::size_t done = 0; done < rows; done += block) {
    add_block(x + done * n, std::min(block, rows - done));
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

void FloatSums::add_block(const float* x, std::size_t rows) {
  const std::size_t n = counts_.size();
  std::fill(top_.begin(), top_.end(), 0u);
  std::fill(present_.begin(), present_.end(), 0u);
  block_exponents(x, rows, n, top_.data(), present_.data());
  for (std::size_t j = 0; j < n; ++j) {
    // Values of exponent `low` and above become integers: x·2^(150 − low).
    const int low = std::max<int>(static_cast<int>(top_[j]), 1) - kSumWindowBits;
    scale_[j] = power_of_two(150 - low);  // between 2^-84 and 2^169
  }
  std::fill(sum_.begin(), sum_.end(), 0.0);
  std::fill(inexact_.begin(), inexact_.end(), 0.0);
  block_scaled_sums(x, rows, n, scale_.data(), sum_.data(), inexact_.data());
  for (std::size_t j = 0; j < n; ++j) {
    if (top_[j] == 0xffu || inexact_[j] != 0.0) [[unlikely]] {
      for (std::size_t r = 0; r < rows; ++r) add_value(j, x[r * n + j]);
      continue;
    }
    // Exact: a power of two's multiple, far from the smallest doubles.
    blocks_[j].add(
        sum_[j] * power_of_two(std::max<int>(static_cast<int>(top_[j]), 1) - kSumWindowBits - 150));
    counts_[j] += present_[j];
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
