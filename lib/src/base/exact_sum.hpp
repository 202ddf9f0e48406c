// The exact sum of any number of doubles in a long fixed-point accumulator (Kulisch style), so a
// sum split into parts in any way and merged in any order gives the same bits. What it leaves
// out: products, and any rounding other than the one rounding of the exact sum in value().
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <span>

namespace shardprop::detail {

// Every finite double is m·2^(p − 1074) for an integer m < 2^53 and a bit position p in
// [0, 2045], so the exact sum is an integer count of 2^−1074, held in int64 slots of base 2^32:
// slot i weighs 2^(32i − 1074). add() splits ±m·2^(p mod 32) into its low 32 bits, added to slot
// p/32, and the rest (a signed value below 2^53 in magnitude), added to the slot above, without
// propagating carries: normalize() carries them up every kAddsBetweenCarries adds and before any
// read. Normalized, slots 0..kSlots−2 are digits in [0, 2^32) and the top slot holds the sign, so
// the representation is unique: a function of the exact sum alone. Bits 0..2097 hold any one
// double; the whole-int64 top slot above bit 2112 leaves room for more than 2^70 maximal values.
//
// Non-finite inputs are sticky: once a NaN (or both infinities) has been added, value() is NaN;
// once an infinity of one sign has been added, value() is that infinity. Not thread-safe: one
// ExactSum per task, merged afterwards. 544 bytes.
class ExactSum {
 public:
  static constexpr int kSlots = 67;
  // serialize(): the kSlots normalized slots (the top one as two's complement), then the
  // non-finite flags.
  static constexpr std::size_t kSerializedWords = kSlots + 1;

  void add(double x) {
    const std::uint64_t bits = std::bit_cast<std::uint64_t>(x);
    const auto biased_exponent = static_cast<int>((bits >> 52) & 0x7ff);
    if (biased_exponent == 0x7ff) [[unlikely]] {
      add_non_finite(bits);
      return;
    }
    // Subnormals (biased exponent 0) have no implicit bit and the exponent of biased 1.
    const auto magnitude = static_cast<std::int64_t>((bits & kMantissaMask) |
                                                     (std::uint64_t{biased_exponent != 0} << 52));
    const auto sign = -static_cast<std::int64_t>(bits >> 63);  // all ones for a negative x
    const std::int64_t mantissa = (magnitude ^ sign) - sign;
    const int position = biased_exponent - (biased_exponent != 0);
    const int slot = position >> 5;
    const int shift = position & 31;
    // mantissa·2^shift = high·2^32 + low with low in [0, 2^32): an arithmetic shift floors, and
    // 32 − shift is in [1, 32].
    slots_[slot] +=
        static_cast<std::int64_t>((static_cast<std::uint64_t>(mantissa) << shift) & kDigitMask);
    slots_[slot + 1] += mantissa >> (32 - shift);
    if (--adds_until_carry_ == 0) [[unlikely]] {
      normalize();
    }
  }

  void merge(const ExactSum& other);

  // The exact sum rounded to the nearest double (ties to even); ±inf beyond the double range.
  double value() const;

  std::array<std::uint64_t, kSerializedWords> serialize() const;
  // Throws Error if `words` is not what serialize() writes.
  static ExactSum deserialize(std::span<const std::uint64_t, kSerializedWords> words);

 private:
  static constexpr std::uint64_t kMantissaMask = (std::uint64_t{1} << 52) - 1;
  static constexpr std::uint64_t kDigitMask = 0xffffffff;
  // An add puts less than 2^53 into a slot and a normalized (or just merged) slot is below 2^33,
  // so 1023 adds keep every slot below 2^63.
  static constexpr std::int32_t kAddsBetweenCarries = 1023;
  enum NonFinite : std::uint64_t { kNaN = 1, kPlusInfinity = 2, kMinusInfinity = 4 };

  void add_non_finite(std::uint64_t bits);
  void normalize();

  std::array<std::int64_t, kSlots> slots_{};
  std::int32_t adds_until_carry_ = kAddsBetweenCarries;
  std::uint32_t non_finite_ = 0;
};

}  // namespace shardprop::detail
