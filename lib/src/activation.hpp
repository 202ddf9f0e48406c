// Element-wise activations. Backward uses the layer's output y only (σ' = y(1−y),
// tanh' = 1−y², relu' = [y > 0]), so the input need not be kept.
#pragma once

#include "matrix.hpp"
#include "shardprop/model.hpp"

namespace shardprop::detail {

struct ActivationLayer {
  Activation kind = Activation::identity;
  int width = 0;

  // x, y: [rows, width].
  void forward(ConstMatrix x, Matrix y) const;
  // y: this layer's forward output; delta: dL/dy on entry, dL/dx on return (in place).
  void backward(ConstMatrix y, Matrix delta) const;
};

}  // namespace shardprop::detail
