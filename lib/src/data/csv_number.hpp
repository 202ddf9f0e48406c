// Parsing one CSV field as a float: a branch-light fast path for the common short forms and a
// complete fallback on fast_float. Both round correctly, so they agree bit for bit. Leaves out
// finding where a field ends.
#pragma once

#include <fast_float/fast_float.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <system_error>

namespace shardprop::detail {

// Byte masks over 8 characters loaded little-endian (character i in bits 8i..8i+7).
inline std::uint64_t load_8_bytes(const char* p) {
  std::uint64_t word = 0;
  std::memcpy(&word, p, sizeof word);
  return word;
}

// Non-zero bytes where a character is not '0'..'9'. A carry from a byte >= 0xFA can only
// spoil the bytes after the first non-digit, which no caller looks at.
inline std::uint64_t non_digit_bytes(std::uint64_t word) {
  const std::uint64_t high = word & 0xF0F0F0F0F0F0F0F0ULL;
  const std::uint64_t low_ok = ((word + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4;
  return (high | low_ok) ^ 0x3333333333333333ULL;
}

// The value of the first `digits` (1..8) decimal digits of word.
inline std::uint64_t digits_value(std::uint64_t word, unsigned digits) {
  std::uint64_t v = (word - 0x3030303030303030ULL) << (8 * (8 - digits));
  v = v * 10 + (v >> 8);  // pairs of digits
  return ((v & 0x000000FF000000FFULL) * 0x000F424000000064ULL +
          ((v >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL) >>
         32;
}

inline constexpr std::uint64_t kLowBytes[9] = {0,
                                               0xFFULL,
                                               0xFFFFULL,
                                               0xFFFFFFULL,
                                               0xFFFFFFFFULL,
                                               0xFFFFFFFFFFULL,
                                               0xFFFFFFFFFFFFULL,
                                               0xFFFFFFFFFFFFFFULL,
                                               ~0ULL};
inline constexpr std::uint64_t kPowersOfTen[9] = {1,      10,      100,      1000,     10000,
                                                  100000, 1000000, 10000000, 100000000};
inline constexpr float kFloatPowersOfTen[9] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f,
                                               1e5f, 1e6f, 1e7f, 1e8f};

inline std::uint32_t load_4_bytes(const char* p) {
  std::uint32_t word = 0;
  std::memcpy(&word, p, sizeof word);
  return word;
}

// The same two steps on 4 characters, for integers of up to 4 digits (pixels, counts, class
// indices), with 32-bit constants that fit in instructions.
inline std::uint32_t non_digit_bytes(std::uint32_t word) {
  const std::uint32_t high = word & 0xF0F0F0F0U;
  const std::uint32_t low_ok = ((word + 0x06060606U) & 0xF0F0F0F0U) >> 4;
  return (high | low_ok) ^ 0x33333333U;
}

inline std::uint32_t digits_value(std::uint32_t word, unsigned digits) {
  std::uint32_t v = (word - 0x30303030U) << (8 * (4 - digits));
  v = v * 10 + (v >> 8);                           // bytes 0 and 2 hold pairs of digits
  return ((v & 0x00FF00FFU) * 0x00640001U) >> 16;  // 100 · pair 0 + pair 2
}

inline constexpr std::uint32_t kLowBytes32[5] = {0, 0xFFU, 0xFFFFU, 0xFFFFFFU, 0xFFFFFFFFU};

// Parses [first, last) when it is exactly [-]D or [-]D.F, D and F runs of 1 to 8 digits, with
// all the digits together at most 2^24; returns false for anything else (the caller falls
// back). The digits are then an exact float and 10^|F| an exact power, so one division rounds
// correctly, as fast_float's own fast path does. Reads up to 17 bytes from first whatever
// last is: the caller guarantees padding.
inline bool parse_short_float(const char* first, const char* last, float& value) {
  const bool negative = *first == '-';
  const char* p = first + (negative ? 1 : 0);
  const auto length = static_cast<std::uint64_t>(last - p);
  if (length - 1 >= 16) return false;  // empty, or too long for two words
  const std::uint64_t word = load_8_bytes(p);
  const std::uint64_t non_digits = non_digit_bytes(word) & kLowBytes[length < 8 ? length : 8];
  std::uint64_t mantissa = 0;
  unsigned fraction_digits = 0;
  if (non_digits == 0) {
    if (length > 8) return false;
    mantissa = digits_value(word, static_cast<unsigned>(length));
  } else {
    const auto dot = static_cast<unsigned>(__builtin_ctzll(non_digits)) >> 3;
    fraction_digits = static_cast<unsigned>(length) - dot - 1;
    if (dot == 0 || p[dot] != '.' || fraction_digits - 1 >= 8) return false;
    const std::uint64_t fraction = load_8_bytes(p + dot + 1);
    if ((non_digit_bytes(fraction) & kLowBytes[fraction_digits]) != 0) return false;
    mantissa = digits_value(word, dot) * kPowersOfTen[fraction_digits] +
               digits_value(fraction, fraction_digits);
  }
  if (mantissa > (std::uint64_t{1} << 24)) return false;
  float magnitude = static_cast<float>(mantissa);
  if (fraction_digits != 0) magnitude /= kFloatPowersOfTen[fraction_digits];
  value = negative ? -magnitude : magnitude;
  return true;
}

enum class NumberStatus : std::uint8_t {
  finite,
  non_finite,    // a nan or inf token
  out_of_range,  // a finite number too large for a float (1e39)
  not_a_number,
};

// Parses all of [first, last) (already trimmed, not empty) as a float: anything fast_float's
// general format accepts (with nan, inf, infinity in any case), plus a leading '+'.
inline NumberStatus parse_float(const char* first, const char* last, float& value) {
  if (parse_short_float(first, last, value)) return NumberStatus::finite;
  if (last - first >= 2 && *first == '+' && first[1] != '-' && first[1] != '+') ++first;
  const auto result = fast_float::from_chars(first, last, value);
  if (result.ec != std::errc() || result.ptr != last) return NumberStatus::not_a_number;
  if (std::isfinite(value)) return NumberStatus::finite;
  const char* letter = first + (*first == '-' ? 1 : 0);
  const bool token = *letter == 'n' || *letter == 'N' || *letter == 'i' || *letter == 'I';
  return token ? NumberStatus::non_finite : NumberStatus::out_of_range;
}

}  // namespace shardprop::detail
