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

  // The pieces of forward() and backward(), in the order those run them, for a caller that
  // times the products apart from the element-wise work (the trainer's step profile). The
  // results are the same bits either way.
  void copy_bias(const float* params, Matrix z) const;                   // every row of z ← b
  void add_product(const float* params, ConstMatrix x, Matrix z) const;  // z += x·Wᵀ
  void weight_gradient(ConstMatrix x, ConstMatrix delta, float* grads) const;    // dW = δᵀ·x
  void bias_gradient(ConstMatrix delta, float* grads) const;                     // db = Σ_rows δ
  void input_gradient(const float* params, ConstMatrix delta, Matrix dx) const;  // dx = δ·W
};

}  // namespace shardprop::detail
