// Activation kernels: plain loops the compiler vectorises.
#include "nn/activation.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "base/simd.hpp"

namespace shardprop::detail {
namespace {

constexpr std::array<std::pair<Activation, std::string_view>, 5> kNames{{
    {Activation::identity, "identity"},
    {Activation::sigmoid, "sigmoid"},
    {Activation::tanh, "tanh"},
    {Activation::relu, "relu"},
    {Activation::leaky_relu, "leaky_relu"},
}};

}  // namespace

std::optional<Activation> find_activation(std::string_view name) {
  for (const auto& [activation, text] : kNames) {
    if (text == name) return activation;
  }
  return std::nullopt;
}

std::string_view activation_name(Activation activation) {
  for (const auto& [kind, text] : kNames) {
    if (kind == activation) return text;
  }
  return "?";
}

namespace {

// One row of forward(): out[j] = f(in[j]), in and out the same row or apart. Inlined (and so
// into forward's clones).
inline void forward_row(const ActivationLayer& layer, const float* in, float* out) {
  const int width = layer.width;
  const float slope = layer.negative_slope;
  switch (layer.kind) {
    case Activation::identity:
      if (out != in) std::copy_n(in, width, out);
      break;
    case Activation::sigmoid:
      for (int j = 0; j < width; ++j) out[j] = sigmoid(in[j]);
      break;
    case Activation::tanh:
      for (int j = 0; j < width; ++j) out[j] = std::tanh(in[j]);
      break;
    case Activation::relu:
      for (int j = 0; j < width; ++j) out[j] = in[j] > 0.0f ? in[j] : 0.0f;
      break;
    case Activation::leaky_relu:
      for (int j = 0; j < width; ++j) out[j] = in[j] > 0.0f ? in[j] : slope * in[j];
      break;
  }
}

}  // namespace

SHARDPROP_MULTIVERSION
void ActivationLayer::forward(ConstMatrix x, Matrix y) const {
  if (x.data == y.data) {
    // One array to the compiler: the loops vectorise without an overlap check, which the
    // equal pointers would fail.
    for (int r = 0; r < y.rows; ++r) forward_row(*this, y.row(r), y.row(r));
    return;
  }
  for (int r = 0; r < x.rows; ++r) forward_row(*this, x.row(r), y.row(r));
}

namespace {

// One row of backward(): d = dL/dy on entry, dL/dx on return. Inlined into both callers (and
// so into their clones).
inline void backward_row(const ActivationLayer& layer, const float* a, float* d) {
  const int width = layer.width;
  const float slope = layer.negative_slope;
  switch (layer.kind) {
    case Activation::identity:
      break;
    case Activation::sigmoid:
      for (int j = 0; j < width; ++j) d[j] *= a[j] * (1.0f - a[j]);
      break;
    case Activation::tanh:
      for (int j = 0; j < width; ++j) d[j] *= 1.0f - a[j] * a[j];
      break;
    case Activation::relu:
      for (int j = 0; j < width; ++j) d[j] = a[j] > 0.0f ? d[j] : 0.0f;
      break;
    case Activation::leaky_relu:
      for (int j = 0; j < width; ++j) d[j] = a[j] > 0.0f ? d[j] : slope * d[j];
      break;
  }
}

}  // namespace

SHARDPROP_MULTIVERSION
void ActivationLayer::backward(ConstMatrix y, Matrix delta) const {
  for (int r = 0; r < y.rows; ++r) backward_row(*this, y.row(r), delta.row(r));
}

SHARDPROP_MULTIVERSION
void ActivationLayer::backward_with_column_sums(ConstMatrix y, Matrix delta,
                                                float* column_sums) const {
  std::fill_n(column_sums, width, 0.0f);
  if (kind == Activation::relu) {  // the common case in one loop: δ read and written once
    for (int r = 0; r < y.rows; ++r) {
      const float* a = y.row(r);
      float* d = delta.row(r);
      for (int j = 0; j < width; ++j) {
        const float v = a[j] > 0.0f ? d[j] : 0.0f;
        d[j] = v;
        column_sums[j] += v;
      }
    }
    return;
  }
  for (int r = 0; r < y.rows; ++r) {
    float* d = delta.row(r);
    backward_row(*this, y.row(r), d);
    for (int j = 0; j < width; ++j) column_sums[j] += d[j];
  }
}

}  // namespace shardprop::detail
