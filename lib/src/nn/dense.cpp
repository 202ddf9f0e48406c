// Dense forward/backward: three products per shard, each one BLAS call.
#include "nn/dense.hpp"

#include <algorithm>

#include "base/blas.hpp"
#include "base/simd.hpp"

namespace shardprop::detail {
namespace {

// db = Σ_rows delta, rows in order. delta: [rows, out], db: [out]. The vector lanes run over
// features, so every db[j] is added in the same order as the plain loop.
SHARDPROP_MULTIVERSION void column_sums(ConstMatrix delta, float* db) {
  std::fill_n(db, delta.cols, 0.0f);
  for (int r = 0; r < delta.rows; ++r) {
    const float* d = delta.row(r);
    for (int j = 0; j < delta.cols; ++j) db[j] += d[j];
  }
}

}  // namespace

void Dense::forward(const float* params, ConstMatrix x, Matrix z) const {
  const float* b = params + bias;
  for (int r = 0; r < x.rows; ++r) std::copy_n(b, out, z.row(r));
  gemm(Transpose::no, Transpose::yes, x.rows, out, in, 1.0f, x.data, x.stride, params + weight, in,
       1.0f, z.data, z.stride);
}

void Dense::backward(const float* params, ConstMatrix x, ConstMatrix delta, float* grads,
                     Matrix dx) const {
  // dW = deltaᵀ·x: [out, rows]·[rows, in].
  gemm(Transpose::yes, Transpose::no, out, in, x.rows, 1.0f, delta.data, delta.stride, x.data,
       x.stride, 0.0f, grads + weight, in);
  column_sums(delta, grads + bias);
  // dx = delta·W: [rows, out]·[out, in].
  if (dx.data != nullptr) {
    gemm(Transpose::no, Transpose::no, x.rows, in, out, 1.0f, delta.data, delta.stride,
         params + weight, in, 0.0f, dx.data, dx.stride);
  }
}

}  // namespace shardprop::detail
