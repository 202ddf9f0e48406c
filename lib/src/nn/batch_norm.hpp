// Batch normalization over a whole minibatch that is split into shards. Each shard computes
// partial statistics of its rows; the trainer combines them in a fixed order (and across
// ranks through the communicator); each shard then normalizes, and backward repeats the
// pattern for the two batch-wide sums Σdy and Σdy·ẑ.
#pragma once

#include <cstddef>
#include <span>

#include "base/matrix.hpp"

namespace shardprop::detail {

// Per-feature (count, mean, M2 = Σ(z − mean)²) of some rows, in double.
struct MomentsView {
  double* count;  // one value
  double* mean;   // [width]
  double* m2;     // [width]
};

// Chan et al.'s pairwise merge: into += other, exact in the sense that merging the moments of
// two row sets gives the moments of their union (up to double rounding).
void merge_moments(MomentsView into, const double* other_count, const double* other_mean,
                   const double* other_m2, int width);

struct BatchNorm {
  int width = 0;
  std::size_t gamma = 0;  // offsets into the flat float array
  std::size_t beta = 0;
  std::size_t running_mean = 0;
  std::size_t running_var = 0;
  std::size_t counter = 0;  // index into the model's int64 counters
  float epsilon = 1e-5f;
  float momentum = 0.1f;

  // One pass over z: [rows, width] in double, shifted by the first row, so a feature with mean
  // 1e4 and deviation 1e-2 keeps its digits (an unshifted Σz² − (Σz)² formula would not).
  void partial_moments(ConstMatrix z, MomentsView out) const;

  // Training forward with the whole minibatch's mean (= mean_hi + mean_lo) and 1/√(σ² + ε):
  // xhat = ((z − mean_hi) − mean_lo)·inv_std, y = γ·xhat + β. z, xhat, y: [rows, width].
  void normalize(const float* params, const float* mean_hi, const float* mean_lo,
                 const float* inv_std, ConstMatrix z, Matrix xhat, Matrix y) const;

  // Inference forward with the running statistics.
  void forward_inference(const float* params, ConstMatrix z, Matrix y) const;

  // This shard's Σdy and Σdy·xhat per feature (double), and dβ = Σdy, dγ = Σdy·xhat written
  // into grads. dy: [rows, width] = dL/dy, already scaled by 1/B.
  void partial_sums(ConstMatrix dy, ConstMatrix xhat, double* sum_dy, double* sum_dy_xhat,
                    float* grads) const;

  // dz = γ·inv_std·(dy − Σdy/B − xhat·Σ(dy·xhat)/B) with the minibatch-wide values
  // grad_scale = γ·inv_std, mean_dy = Σdy/B, mean_dy_xhat = Σ(dy·xhat)/B. dy and dz may alias.
  void backward_input(const float* grad_scale, const float* mean_dy, const float* mean_dy_xhat,
                      ConstMatrix dy, ConstMatrix xhat, Matrix dz) const;
};

}  // namespace shardprop::detail
