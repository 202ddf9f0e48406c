// The layer stack behind a Model: layer kinds, the flat parameter layout, and one shard's
// training pass split into phases at batch-norm layers (the only points where shards must
// meet), plus the inference forward pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "base/aligned.hpp"
#include "base/matrix.hpp"
#include "nn/activation.hpp"
#include "nn/batch_norm.hpp"
#include "nn/dense.hpp"
#include "nn/dropout.hpp"
#include "shardprop/model.hpp"
#include "train/comm.hpp"

namespace shardprop::detail {

using Layer = std::variant<Dense, ActivationLayer, BatchNorm, Dropout>;

// Everything one shard's pass writes, sized once for `capacity_rows` rows.
struct ShardWorkspace {
  int capacity_rows = 0;
  std::vector<AlignedFloats> outputs;  // per layer: [capacity_rows, width]
  std::vector<AlignedFloats> xhat;     // per layer, batch-norm layers only: [capacity_rows, width]
  std::vector<AlignedFloats> masks;    // per layer, dropout layers only: [capacity_rows, width]
  AlignedFloats delta_a, delta_b;      // ping-pong dL/d(activations): [capacity_rows, max width]
  // Per batch-norm layer: count, mean[w], m2[w] (forward) then Σdy[w], Σdy·xhat[w] (backward).
  std::vector<std::vector<double>> partials;

  // State carried from one phase to the next.
  ConstMatrix x;
  const float* targets = nullptr;
  float scale = 0.0f;
  DropoutKey dropout;
  Matrix delta, spare;
  double loss = 0.0;
};

// What every shard needs from the whole minibatch at a batch-norm layer.
struct BatchNormSync {
  // Forward. The mean is split into a float and its float remainder so z − mean keeps its
  // digits when |mean| ≫ σ (z − mean_hi is exact for nearby floats).
  AlignedFloats mean_hi, mean_lo, inv_std;
  AlignedFloats grad_scale, mean_dy, mean_dy_xhat;  // backward: γ·inv_std, Σdy/B, Σ(dy·xhat)/B
  double rows = 0.0;                                // B, over all shards and ranks
  std::vector<double> local, gathered;              // combine scratch, sized once
};

struct Network {
  ModelSpec spec;
  std::vector<Layer> layers;
  std::vector<int> widths;       // output width of each layer
  std::vector<int> batch_norms;  // layer indices of the batch-norm layers, in order
  std::vector<TensorInfo> tensors;
  std::size_t parameter_count = 0;  // floats
  std::size_t counter_count = 0;    // int64 counters
  std::size_t first_trainable = 0;  // layers below it need no backward pass
  int max_width = 0;
  AlignedFloats parameters;
  std::vector<std::int64_t> counters;

  explicit Network(ModelSpec model_spec);  // validates and lays out; all values zero

  int outputs() const { return widths.back(); }
  ShardWorkspace make_workspace(int capacity_rows) const;
  std::vector<BatchNormSync> make_syncs(int ranks) const;
  // 2 × (dense weights): multiply-adds ×2 of one row's forward pass.
  double forward_flops_per_row() const;

  // Inference: batch norm uses running statistics. x: [rows ≤ capacity, inputs]. Returns the
  // view of the last layer's output.
  ConstMatrix forward(const float* params, ConstMatrix x, ShardWorkspace& ws) const;

  // --- Training, one shard at a time, in phases -----------------------------------------
  // Phases 0..K−1 run forward up to batch norm k and compute its partial moments; phase K
  // finishes the forward pass, takes the loss and runs backward down to the last batch norm;
  // phases K+1..2K continue backward. After every phase but the last, the trainer calls
  // combine() over all shards. Without batch norm there is one phase: the whole pass.
  int phase_count() const { return 2 * static_cast<int>(batch_norms.size()) + 1; }

  // x: [rows, inputs], targets: this shard's rows, scale: 1/B for the whole minibatch, key:
  // which dropout masks this shard's rows draw.
  void begin_pass(ShardWorkspace& ws, ConstMatrix x, const float* targets, float scale,
                  DropoutKey key = {}) const;
  // Writes every trained parameter's gradient into grads by the end of the last phase.
  void run_phase(int phase, const float* params, std::span<const BatchNormSync> syncs,
                 ShardWorkspace& ws, float* grads) const;
  // Combines the partials of shards [0, n) in shard order, then across ranks in rank order,
  // into syncs. After a forward phase it also updates the running statistics when
  // running_params is not null (params for the γ/running offsets; counters alike).
  void combine(int phase, std::span<ShardWorkspace> shards, Communicator& comm, const float* params,
               std::span<BatchNormSync> syncs, float* running_params,
               std::int64_t* running_counters) const;

  // One whole-minibatch training pass on a single shard (no running-statistics update):
  // the reference the sharded step is compared with, and the tests' gradient.
  double training_pass(const float* params, ConstMatrix x, const float* targets, float scale,
                       ShardWorkspace& ws, float* grads, DropoutKey key = {}) const;
};

}  // namespace shardprop::detail
