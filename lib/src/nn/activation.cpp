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

SHARDPROP_MULTIVERSION
void ActivationLayer::forward(ConstMatrix x, Matrix y) const {
  for (int r = 0; r < x.rows; ++r) {
    const float* in = x.row(r);
    float* out = y.row(r);
    switch (kind) {
      case Activation::identity:
        std::copy_n(in, width, out);
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
        for (int j = 0; j < width; ++j) out[j] = in[j] > 0.0f ? in[j] : negative_slope * in[j];
        break;
    }
  }
}

SHARDPROP_MULTIVERSION
void ActivationLayer::backward(ConstMatrix y, Matrix delta) const {
  for (int r = 0; r < y.rows; ++r) {
    const float* a = y.row(r);
    float* d = delta.row(r);
    switch (kind) {
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
        for (int j = 0; j < width; ++j) d[j] = a[j] > 0.0f ? d[j] : negative_slope * d[j];
        break;
    }
  }
}

}  // namespace shardprop::detail
