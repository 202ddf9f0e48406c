// Element-wise activations. Backward uses the layer's output y only (σ' = y(1−y),
// tanh' = 1−y², relu' = [y > 0], leaky relu' = y > 0 ? 1 : α), so the input need not be kept.
#pragma once

#include <cmath>
#include <optional>
#include <string_view>

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

// The activation of a name ("relu"), and the name of an activation: one table for the spec
// text, the command line and checkpoints.
std::optional<Activation> find_activation(std::string_view name);
std::string_view activation_name(Activation activation);

struct ActivationLayer {
  Activation kind = Activation::identity;
  int width = 0;
  float negative_slope = 0.0f;  // leaky_relu's α

  // x, y: [rows, width]; y may be x itself (in place), not otherwise overlap it.
  void forward(ConstMatrix x, Matrix y) const;
  // y: this layer's forward output; delta: dL/dy on entry, dL/dx on return (in place).
  void backward(ConstMatrix y, Matrix delta) const;
  // backward(), and in the same pass column_sums[j] = Σ_rows dL/dx[r][j] (rows in order): the
  // bias gradient of a dense layer below, the same bits as Dense::bias_gradient gives.
  void backward_with_column_sums(ConstMatrix y, Matrix delta, float* column_sums) const;
};

}  // namespace shardprop::detail
