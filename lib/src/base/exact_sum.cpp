// Carrying, merging, rounding and serializing the exact sum; add() is inline in the header.
#include "base/exact_sum.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "shardprop/error.hpp"

namespace shardprop::detail {

void ExactSum::add_non_finite(std::uint64_t bits) {
  if ((bits & kMantissaMask) != 0) {
    non_finite_ |= kNaN;
  } else {
    non_finite_ |= (bits >> 63) != 0 ? kMinusInfinity : kPlusInfinity;
  }
}

void ExactSum::normalize() {
  std::int64_t carry = 0;
  for (int i = 0; i < kSlots - 1; ++i) {
    const std::int64_t v = slots_[i] + carry;
    carry = v >> 32;  // floor(v / 2^32): an arithmetic shift (defined for negatives in C++20)
    slots_[i] = static_cast<std::int64_t>(static_cast<std::uint64_t>(v) & kDigitMask);
  }
  slots_[kSlots - 1] += carry;
  adds_until_carry_ = kAddsBetweenCarries;
}

void ExactSum::merge(const ExactSum& other) {
  ExactSum addend = other;
  addend.normalize();
  normalize();
  // Each slot is now below 2^33: still room for a full round of adds.
  for (int i = 0; i < kSlots; ++i) slots_[i] += addend.slots_[i];
  non_finite_ |= other.non_finite_;
}

double ExactSum::value() const {
  if (non_finite_ != 0) {
    const bool both_infinities = (non_finite_ & kPlusInfinity) && (non_finite_ & kMinusInfinity);
    if ((non_finite_ & kNaN) || both_infinities) return std::numeric_limits<double>::quiet_NaN();
    const double infinity = std::numeric_limits<double>::infinity();
    return (non_finite_ & kPlusInfinity) ? infinity : -infinity;
  }
  ExactSum magnitude = *this;
  magnitude.normalize();
  const bool negative = magnitude.slots_[kSlots - 1] < 0;
  if (negative) {
    for (std::int64_t& s : magnitude.slots_) s = -s;
    magnitude.normalize();
  }
  // The magnitude as base-2^32 digits: the slots below the top, then the top slot's two halves.
  std::array<std::uint32_t, kSlots + 1> digits{};
  for (int i = 0; i < kSlots - 1; ++i) digits[i] = static_cast<std::uint32_t>(magnitude.slots_[i]);
  const auto top = static_cast<std::uint64_t>(magnitude.slots_[kSlots - 1]);
  digits[kSlots - 1] = static_cast<std::uint32_t>(top);
  digits[kSlots] = static_cast<std::uint32_t>(top >> 32);

  int highest = kSlots;
  while (highest >= 0 && digits[highest] == 0) --highest;
  if (highest < 0) return 0.0;  // an exact zero is +0, whatever zeros were added
  const int msb = 32 * highest + 31 - std::countl_zero(digits[highest]);
  auto bit = [&digits](int position) {
    return (std::uint64_t{digits[position >> 5]} >> (position & 31)) & 1;
  };
  // Up to 53 bits: exactly m·2^−1074, a subnormal or the smallest normal binade.
  const int shift = std::max(msb - 52, 0);
  std::uint64_t mantissa = 0;
  for (int position = msb; position >= shift; --position) mantissa = mantissa << 1 | bit(position);
  if (shift > 0) {
    // Round half to even on the bit below the mantissa and everything below that.
    const int round = shift - 1;
    bool sticky = (digits[round >> 5] & ((std::uint32_t{1} << (round & 31)) - 1)) != 0;
    for (int i = 0; i < (round >> 5) && !sticky; ++i) sticky = digits[i] != 0;
    if (bit(round) && (sticky || (mantissa & 1))) ++mantissa;  // 2^53 is still exact
  }
  // Exact whenever the result is a double (mantissa ≤ 2^53); ±inf beyond the largest.
  const double result = std::ldexp(static_cast<double>(mantissa), shift - 1074);
  return negative ? -result : result;
}

std::array<std::uint64_t, ExactSum::kSerializedWords> ExactSum::serialize() const {
  ExactSum normalized = *this;
  normalized.normalize();
  std::array<std::uint64_t, kSerializedWords> words{};
  for (int i = 0; i < kSlots; ++i) words[i] = static_cast<std::uint64_t>(normalized.slots_[i]);
  words[kSlots] = non_finite_;
  return words;
}

ExactSum ExactSum::deserialize(std::span<const std::uint64_t, kSerializedWords> words) {
  ExactSum sum;
  for (int i = 0; i < kSlots; ++i) {
    if (i < kSlots - 1 && words[i] > kDigitMask) {
      throw Error("exact sum: serialized digit " + std::to_string(i) + " is out of range");
    }
    sum.slots_[i] = static_cast<std::int64_t>(words[i]);
  }
  if ((words[kSlots] & ~std::uint64_t{kNaN | kPlusInfinity | kMinusInfinity}) != 0) {
    throw Error("exact sum: unknown non-finite flags " + std::to_string(words[kSlots]));
  }
  sum.non_finite_ = static_cast<std::uint32_t>(words[kSlots]);
  return sum;
}

}  // namespace shardprop::detail
