// Batch-norm kernels: per-feature loops over a shard's rows.
#include "nn/batch_norm.hpp"

#include <algorithm>
#include <cmath>

#include "base/simd.hpp"

namespace shardprop::detail {

void merge_moments(MomentsView into, const double* other_count, const double* other_mean,
                   const double* other_m2, int width) {
  const double na = *into.count;
  const double nb = *other_count;
  const double n = na + nb;
  if (nb == 0.0) return;
  for (int j = 0; j < width; ++j) {
    const double delta = other_mean[j] - into.mean[j];
    into.mean[j] += delta * (nb / n);
    into.m2[j] += other_m2[j] + delta * delta * (na * nb / n);
  }
  *into.count = n;
}

SHARDPROP_MULTIVERSION
void BatchNorm::partial_moments(ConstMatrix z, MomentsView out) const {
  // One pass of sums shifted by the first row: d = z − z₀ is exact in double, and with the
  // shift inside the data's spread, Σd² − (Σd)²/n keeps the digits that Σz² − (Σz)²/n loses.
  double* __restrict sum = out.mean;
  double* __restrict sum_squares = out.m2;
  std::fill_n(sum, width, 0.0);
  std::fill_n(sum_squares, width, 0.0);
  const float* __restrict shift = z.row(0);
  for (int r = 1; r < z.rows; ++r) {
    const float* __restrict row = z.row(r);
    for (int j = 0; j < width; ++j) {
      const double d = static_cast<double>(row[j]) - static_cast<double>(shift[j]);
      sum[j] += d;
      sum_squares[j] += d * d;
    }
  }
  const double rows = z.rows;
  for (int j = 0; j < width; ++j) {
    const double mean_shifted = sum[j] / rows;
    out.m2[j] = std::max(0.0, sum_squares[j] - sum[j] * mean_shifted);  // sum aliases out.mean
    out.mean[j] = static_cast<double>(shift[j]) + mean_shifted;
  }
  *out.count = rows;
}

SHARDPROP_MULTIVERSION
void BatchNorm::normalize(const float* params, const float* mean_hi, const float* mean_lo,
                          const float* inv_std, ConstMatrix z, Matrix xhat, Matrix y) const {
  // __restrict: the rows never overlap the per-feature vectors, and saying so lets the loop
  // vectorize without runtime alias checks over eight pointers.
  const float* __restrict g = params + gamma;
  const float* __restrict b = params + beta;
  const float* __restrict hi = mean_hi;
  const float* __restrict lo = mean_lo;
  const float* __restrict scale = inv_std;
  for (int r = 0; r < z.rows; ++r) {
    const float* __restrict in = z.row(r);
    float* __restrict xh = xhat.row(r);
    float* __restrict out = y.row(r);
    for (int j = 0; j < width; ++j) {
      const float x = ((in[j] - hi[j]) - lo[j]) * scale[j];
      xh[j] = x;
      out[j] = g[j] * x + b[j];
    }
  }
}

SHARDPROP_MULTIVERSION
void BatchNorm::forward_inference(const float* params, ConstMatrix z, Matrix y) const {
  const float* g = params + gamma;
  const float* b = params + beta;
  const float* mean = params + running_mean;
  const float* var = params + running_var;
  for (int r = 0; r < z.rows; ++r) {
    const float* in = z.row(r);
    float* out = y.row(r);
    for (int j = 0; j < width; ++j) {
      out[j] = g[j] * (in[j] - mean[j]) / std::sqrt(var[j] + epsilon) + b[j];
    }
  }
}

SHARDPROP_MULTIVERSION
void BatchNorm::partial_sums(ConstMatrix dy, ConstMatrix xhat, double* sum_dy, double* sum_dy_xhat,
                             float* grads) const {
  std::fill_n(sum_dy, width, 0.0);
  std::fill_n(sum_dy_xhat, width, 0.0);
  double* __restrict s1 = sum_dy;
  double* __restrict s2 = sum_dy_xhat;
  for (int r = 0; r < dy.rows; ++r) {
    const float* __restrict d = dy.row(r);
    const float* __restrict xh = xhat.row(r);
    for (int j = 0; j < width; ++j) {
      s1[j] += d[j];
      s2[j] += static_cast<double>(d[j]) * xh[j];
    }
  }
  float* dgamma = grads + gamma;
  float* dbeta = grads + beta;
  for (int j = 0; j < width; ++j) {
    dgamma[j] = static_cast<float>(sum_dy_xhat[j]);
    dbeta[j] = static_cast<float>(sum_dy[j]);
  }
}

SHARDPROP_MULTIVERSION
void BatchNorm::backward_input(const float* grad_scale, const float* mean_dy,
                               const float* mean_dy_xhat, ConstMatrix dy, ConstMatrix xhat,
                               Matrix dz) const {
  // dy and dz may be the same rows (in place), so only the read-only vectors are __restrict.
  const float* __restrict scale = grad_scale;
  const float* __restrict m1 = mean_dy;
  const float* __restrict m2 = mean_dy_xhat;
  for (int r = 0; r < dy.rows; ++r) {
    const float* d = dy.row(r);
    const float* __restrict xh = xhat.row(r);
    float* out = dz.row(r);
    for (int j = 0; j < width; ++j) out[j] = scale[j] * (d[j] - m1[j] - xh[j] * m2[j]);
  }
}

}  // namespace shardprop::detail
