// Batch norm across shards, the layer's half: where a shard's partial statistics live, and how
// partials merged one shard at a time, in an order the caller fixes, become what every shard
// needs (the normalisation constants, the running statistics, the backward sums). Collecting
// the partials from shards and processes is the trainer's (train/batch_norm_combine.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/aligned.hpp"
#include "nn/batch_norm.hpp"

namespace shardprop::detail {

// One shard's partials for a batch norm of width w, in double, as ShardWorkspace::partials
// holds them: [count, mean[w], m2[w]] (the forward moments) then [Σdy[w], Σdy·xhat[w]] (the
// backward sums).
struct BatchNormPartials {
  static std::size_t moments_size(int width) { return 1 + 2 * static_cast<std::size_t>(width); }
  static std::size_t sums_size(int width) { return 2 * static_cast<std::size_t>(width); }
  static std::size_t size(int width) { return moments_size(width) + sums_size(width); }
  static std::size_t sums_offset(int width) { return moments_size(width); }
};

// What every shard needs from the whole minibatch at one batch-norm layer, and the merge that
// produces it. Forward: begin_moments(), merge_moments() once per shard in the canonical
// order, finish_moments(); backward likewise with the sums. Sized once; allocates nothing.
struct BatchNormSync {
  // Forward. The mean is split into a float and its float remainder so z − mean keeps its
  // digits when |mean| ≫ σ (z − mean_hi is exact for nearby floats).
  AlignedFloats mean_hi, mean_lo, inv_std;
  AlignedFloats grad_scale, mean_dy, mean_dy_xhat;  // backward: γ·inv_std, Σdy/B, Σ(dy·xhat)/B
  double rows = 0.0;                                // B, over all shards and ranks
  std::vector<double> total;  // what is merged so far: moments, then sums (same layout)

  explicit BatchNormSync(int width);
  int width() const { return static_cast<int>(mean_hi.size()); }

  // Chan's merge of one shard's moments [count, mean[w], m2[w]] into the total.
  void begin_moments();
  void merge_moments(const double* shard_moments);
  // μ (split), 1/√(σ² + ε) and B from the merged moments (σ² biased, as normalization uses).
  void finish_moments(const BatchNorm& layer);
  // running ← (1 − momentum)·running + momentum·batch value (unbiased variance, as PyTorch), and
  // num_batches_tracked += 1. params, counters: the model's whole arrays.
  void update_running_statistics(const BatchNorm& layer, float* params,
                                 std::int64_t* counters) const;

  // Σdy and Σdy·xhat of one shard [Σdy[w], Σdy·xhat[w]] added to the total.
  void begin_sums();
  void add_sums(const double* shard_sums);
  // γ·inv_std, Σdy/B and Σ(dy·xhat)/B; after finish_moments of the same step.
  void finish_sums(const BatchNorm& layer, const float* params);
};

}  // namespace shardprop::detail
