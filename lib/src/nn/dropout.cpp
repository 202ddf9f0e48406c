// Dropout kernels: one hash per row, then one cheap mix per element.
#include "nn/dropout.hpp"

#include "base/rng.hpp"
#include "base/simd.hpp"

namespace shardprop::detail {

SHARDPROP_MULTIVERSION
void Dropout::forward_train(DropoutKey key, ConstMatrix x, Matrix y, Matrix mask) const {
  const float keep_scale = 1.0f / (1.0f - rate);
  // A value survives when its 24 random bits, as a fraction, are at least the rate.
  const auto threshold = static_cast<std::uint64_t>(static_cast<double>(rate) * 16777216.0);
  for (int r = 0; r < x.rows; ++r) {
    const std::uint64_t row = static_cast<std::uint64_t>(key.first_row + r);
    const std::uint64_t base = random_bits(key.seed, RngPurpose::dropout, key.step,
                                           (row << 8) ^ static_cast<std::uint64_t>(layer));
    const float* in = x.row(r);
    float* out = y.row(r);
    float* m = mask.row(r);
    for (int j = 0; j < width; ++j) {
      const std::uint64_t bits =
          mix64(base + static_cast<std::uint64_t>(j) * 0x9e3779b97f4a7c15ULL);
      m[j] = (bits >> 40) >= threshold ? keep_scale : 0.0f;
      out[j] = in[j] * m[j];
    }
  }
}

SHARDPROP_MULTIVERSION
void Dropout::backward(ConstMatrix mask, Matrix delta) const {
  for (int r = 0; r < delta.rows; ++r) {
    const float* m = mask.row(r);
    float* d = delta.row(r);
    for (int j = 0; j < width; ++j) d[j] *= m[j];
  }
}

}  // namespace shardprop::detail
