// Element-wise activations. Backward uses the layer's output y only (σ' = y(1−y),
// tanh' = 1−y², relu' = [y > 0]), so the input need not be kept.
#pragma once

#include <cmath>

#include "base/matrix.hpp"
#include "shardprop/model.hpp"

namespace shardprop::detail {

// σ(x) without evaluating exp of a large positive number: no overflow for any finite input.
// Shared by the activation and the bce loss so both give the same bits.
inline float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

struct ActivationLayer {
  Activation kind = Activation::identity;
  int width = 0;

  // x, y: [rows, width].
  void forward(ConstMatrix x, Matrix y) const;
  // y: this layer's forward output; delta: dL/dy on entry, dL/dx on return (in place).
  void backward(ConstMatrix y, Matrix delta) const;
};

}  // namespace shardprop::detail
