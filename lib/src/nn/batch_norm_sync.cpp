// Merging batch-norm partials into the minibatch-wide constants. The arithmetic is in double
// and its order is the caller's: shards one at a time, so the bits depend on that order only.
#include "nn/batch_norm_sync.hpp"

#include <algorithm>
#include <cmath>

namespace shardprop::detail {

BatchNormSync::BatchNormSync(int width) {
  const std::size_t w = static_cast<std::size_t>(width);
  for (AlignedFloats* v : {&mean_hi, &mean_lo, &inv_std, &grad_scale, &mean_dy, &mean_dy_xhat}) {
    v->assign(w, 0.0f);
  }
  total.assign(
      std::max(BatchNormPartials::moments_size(width), BatchNormPartials::sums_size(width)), 0.0);
}

void BatchNormSync::begin_moments() {
  std::fill_n(total.begin(), BatchNormPartials::moments_size(width()), 0.0);
}

void BatchNormSync::merge_moments(const double* shard_moments) {
  const int w = width();
  double* count = total.data();
  detail::merge_moments({count, count + 1, count + 1 + w}, shard_moments, shard_moments + 1,
                        shard_moments + 1 + w, w);
}

void BatchNormSync::finish_moments(const BatchNorm& layer) {
  const int w = width();
  const double* mean = total.data() + 1;
  const double* m2 = mean + w;
  rows = total[0];
  for (int j = 0; j < w; ++j) {
    const double variance = m2[j] / rows;  // biased, as in normalization
    mean_hi[j] = static_cast<float>(mean[j]);
    mean_lo[j] = static_cast<float>(mean[j] - static_cast<double>(mean_hi[j]));
    inv_std[j] = static_cast<float>(1.0 / std::sqrt(variance + layer.epsilon));
  }
}

void BatchNormSync::update_running_statistics(const BatchNorm& layer, float* params,
                                              std::int64_t* counters) const {
  const int w = width();
  const double* mean = total.data() + 1;
  const double* m2 = mean + w;
  float* running_mean = params + layer.running_mean;
  float* running_var = params + layer.running_var;
  const double m = layer.momentum;
  for (int j = 0; j < w; ++j) {
    const double unbiased = rows > 1.0 ? m2[j] / (rows - 1.0) : 0.0;
    running_mean[j] = static_cast<float>((1.0 - m) * running_mean[j] + m * mean[j]);
    running_var[j] = static_cast<float>((1.0 - m) * running_var[j] + m * unbiased);
  }
  counters[layer.counter] += 1;
}

void BatchNormSync::begin_sums() {
  std::fill_n(total.begin(), BatchNormPartials::sums_size(width()), 0.0);
}

void BatchNormSync::add_sums(const double* shard_sums) {
  const int w = width();
  double* sum_dy = total.data();
  double* sum_dy_xhat = sum_dy + w;
  const double* a = shard_sums;
  const double* c = shard_sums + w;
  for (int j = 0; j < w; ++j) {
    sum_dy[j] += a[j];
    sum_dy_xhat[j] += c[j];
  }
}

void BatchNormSync::finish_sums(const BatchNorm& layer, const float* params) {
  const int w = width();
  const double* sum_dy = total.data();
  const double* sum_dy_xhat = sum_dy + w;
  const float* gamma = params + layer.gamma;
  for (int j = 0; j < w; ++j) {
    grad_scale[j] = gamma[j] * inv_std[j];
    mean_dy[j] = static_cast<float>(sum_dy[j] / rows);
    mean_dy_xhat[j] = static_cast<float>(sum_dy_xhat[j] / rows);
  }
}

}  // namespace shardprop::detail
