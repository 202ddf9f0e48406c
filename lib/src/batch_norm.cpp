// Batch-norm kernels: per-feature loops over a shard's rows.
#include "batch_norm.hpp"

#include <algorithm>
#include <cmath>

#include "simd.hpp"

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
  std::fill_n(out.mean, width, 0.0);
  std::fill_n(out.m2, width, 0.0);
  for (int r = 0; r < z.rows; ++r) {
    const float* row = z.row(r);
    for (int j = 0; j < width; ++j) out.mean[j] += row[j];
  }
  const double inv_rows = 1.0 / z.rows;
  for (int j = 0; j < width; ++j) out.mean[j] *= inv_rows;
  for (int r = 0; r < z.rows; ++r) {
    const float* row = z.row(r);
    for (int j = 0; j < width; ++j) {
      const double d = row[j] - out.mean[j];
      out.m2[j] += d * d;
    }
  }
  *out.count = z.rows;
}

SHARDPROP_MULTIVERSION
void BatchNorm::normalize(const float* params, const float* mean_hi, const float* mean_lo,
                          const float* inv_std, ConstMatrix z, Matrix xhat, Matrix y) const {
  const float* g = params + gamma;
  const float* b = params + beta;
  for (int r = 0; r < z.rows; ++r) {
    const float* in = z.row(r);
    float* xh = xhat.row(r);
    float* out = y.row(r);
    for (int j = 0; j < width; ++j) {
      xh[j] = ((in[j] - mean_hi[j]) - mean_lo[j]) * inv_std[j];
      out[j] = g[j] * xh[j] + b[j];
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
  for (int r = 0; r < dy.rows; ++r) {
    const float* d = dy.row(r);
    const float* xh = xhat.row(r);
    for (int j = 0; j < width; ++j) {
      sum_dy[j] += d[j];
      sum_dy_xhat[j] += static_cast<double>(d[j]) * xh[j];
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
  for (int r = 0; r < dy.rows; ++r) {
    const float* d = dy.row(r);
    const float* xh = xhat.row(r);
    float* out = dz.row(r);
    for (int j = 0; j < width; ++j) {
      out[j] = grad_scale[j] * (d[j] - mean_dy[j] - xh[j] * mean_dy_xhat[j]);
    }
  }
}

}  // namespace shardprop::detail
