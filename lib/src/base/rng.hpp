// Counter-based randomness: every random number is a pure function of (seed, purpose, a, b),
// so initialisation and shuffles do not depend on threads, shards or where a run resumed.
#pragma once

#include <cstdint>

namespace shardprop::detail {

enum class RngPurpose : std::uint64_t {
  initialize = 1,
  shuffle = 2,
  split = 3,
  stream_shuffle = 4,  // which buffered row leaves when a streamed row arrives
  stream_drain = 5,    // the order of the rows left in the buffer at the end of a stream
  dropout = 6,         // dropout masks: (step, minibatch row and layer)
};

// SplitMix64's finaliser: a bijection with full avalanche.
inline constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

inline constexpr std::uint64_t random_bits(std::uint64_t seed, RngPurpose purpose, std::uint64_t a,
                                           std::uint64_t b) {
  std::uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ULL);
  h = mix64(h ^ (static_cast<std::uint64_t>(purpose) * 0xd1b54a32d192ed03ULL));
  h = mix64(h ^ (a + 0x8cb92ba72f3d8dd7ULL));
  return mix64(h ^ (b + 0x632be59bd9b4e019ULL));
}

// Uniform in [0, 1) with 24 random bits (exactly representable in float).
inline constexpr float uniform01(std::uint64_t bits) {
  return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);
}

}  // namespace shardprop::detail
