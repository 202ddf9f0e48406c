// The seeded row-by-row validation split that streams and datasets spread over ranks use: row i
// of the whole is held out when a counter-based hash of (seed, i) falls in the lowest `fraction`
// of its range. It needs only the row's number, so no pass over the data and no communication.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "base/rng.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {

// The hash value below which a row is held out: fraction of the 2^64 range. Throws Error unless
// fraction is in (0, 1).
inline std::uint64_t split_threshold(double fraction) {
  if (!(fraction > 0.0 && fraction < 1.0)) {
    throw Error("validation split: the fraction must be in (0, 1), got " +
                std::to_string(fraction));
  }
  return static_cast<std::uint64_t>(std::ldexp(fraction, 64));
}

inline bool held_out(std::uint64_t seed, std::uint64_t threshold, std::int64_t row) {
  return random_bits(seed, RngPurpose::split, 0, static_cast<std::uint64_t>(row)) < threshold;
}

}  // namespace shardprop::detail
