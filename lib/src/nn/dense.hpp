// The fully connected layer z = x·Wᵀ + b, W stored [out, in] as in PyTorch's nn.Linear.
#pragma once

#include <cstddef>

#include "base/matrix.hpp"

namespace shardprop::detail {

struct Dense {
  int in = 0;
  int out = 0;
  std::size_t weight = 0;  // offsets into the flat parameter (and gradient) array
  std::size_t bias = 0;

  // x: [rows, in], z: [rows, out].
  void forward(const float* params, ConstMatrix x, Matrix z) const;
  // x: [rows, in], delta = dL/dz: [rows, out]. Writes (not accumulates) dW [out, in] and
  // db [out] at this layer's offsets in grads, and dx = delta·W [rows, in] unless dx.data is null.
  void backward(const float* params, ConstMatrix x, ConstMatrix delta, float* grads,
                Matrix dx) const;
};

}  // namespace shardprop::detail
