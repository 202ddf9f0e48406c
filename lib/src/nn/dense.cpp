// Dense forward/backward: three products per shard, each one BLAS call.
#include "nn/dense.hpp"

#include <algorithm>
#include <cstddef>

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
  copy_bias(params, z);
  add_product(params, x, z);
}

void Dense::copy_bias(const float* params, Matrix z) const {
  const float* b = params + bias;
  if (z.rows == 0) return;
  if (z.stride != z.cols) {
    for (int r = 0; r < z.rows; ++r) std::copy_n(b, out, z.row(r));
    return;
  }
  // Contiguous rows: copy the rows already filled onto the next ones, doubling each time, so
  // log₂(rows) large copies replace a call per short row (on the small network the calls cost
  // ~2% of the step).
  const std::size_t row = static_cast<std::size_t>(out);
  const std::size_t total = static_cast<std::size_t>(z.rows) * row;
  std::copy_n(b, row, z.data);
  for (std::size_t filled = row; filled < total; filled *= 2) {
    std::copy_n(z.data, std::min(filled, total - filled), z.data + filled);
  }
}

void Dense::add_product(const float* params, ConstMatrix x, Matrix z) const {
  gemm(Transpose::no, Transpose::yes, x.rows, out, in, 1.0f, x.data, x.stride, params + weight, in,
       1.0f, z.data, z.stride);
}

void Dense::backward(const float* params, ConstMatrix x, ConstMatrix delta, float* grads,
                     Matrix dx) const {
  weight_gradient(x, delta, grads);
  bias_gradient(delta, grads);
  if (dx.data != nullptr) input_gradient(params, delta, dx);
}

void Dense::weight_gradient(ConstMatrix x, ConstMatrix delta, float* grads) const {
  // dW = deltaᵀ·x: [out, rows]·[rows, in].
  gemm(Transpose::yes, Transpose::no, out, in, x.rows, 1.0f, delta.data, delta.stride, x.data,
       x.stride, 0.0f, grads + weight, in);
}

void Dense::bias_gradient(ConstMatrix delta, float* grads) const {
  column_sums(delta, grads + bias);
}

void Dense::input_gradient(const float* params, ConstMatrix delta, Matrix dx) const {
  // dx = delta·W: [rows, out]·[out, in].
  gemm(Transpose::no, Transpose::no, delta.rows, in, out, 1.0f, delta.data, delta.stride,
       params + weight, in, 0.0f, dx.data, dx.stride);
}

}  // namespace shardprop::detail
