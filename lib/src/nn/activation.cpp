// Activation kernels: plain loops the compiler vectorises.
#include "nn/activation.hpp"

#include <algorithm>
#include <cmath>

#include "base/simd.hpp"

namespace shardprop::detail {

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
    }
  }
}

}  // namespace shardprop::detail
