// The layer stack behind a Model: layer kinds, the flat parameter layout, and one shard's
// training pass split into phases at batch-norm layers (the only points where shards must
// meet), plus the inference forward pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <variant>
#include <vector>

#include "base/aligned.hpp"
#include "base/matrix.hpp"
#include "base/phase_clock.hpp"
#include "nn/activation.hpp"
#include "nn/batch_norm.hpp"
#include "nn/batch_norm_sync.hpp"
#include "nn/dense.hpp"
#include "nn/dropout.hpp"
#include "nn/inference.hpp"
#include "nn/loss.hpp"
#include "shardprop/model.hpp"

namespace shardprop::detail {

using Layer = std::variant<Dense, ActivationLayer, BatchNorm, Dropout>;

// Everything one shard's pass writes, sized once for `capacity_rows` rows.
struct ShardWorkspace {
  int capacity_rows = 0;
  // Per layer: [capacity_rows, width], or empty for a layer whose output lives in the buffer
  // of the layer below it (Network::output_slot).
  std::vector<AlignedFloats> outputs;
  std::vector<AlignedFloats> xhat;   // per layer, batch-norm layers only: [capacity_rows, width]
  std::vector<AlignedFloats> masks;  // per layer, dropout layers only: [capacity_rows, width]
  AlignedFloats delta_a, delta_b;    // ping-pong dL/d(activations): [capacity_rows, max width]
  // Per batch-norm layer: this shard's partials, laid out as BatchNormPartials says.
  std::vector<std::vector<double>> partials;

  // State carried from one phase to the next.
  ConstMatrix x;
  const float* targets = nullptr;
  float scale = 0.0f;
  DropoutKey dropout;
  Matrix delta, spare;
  double loss = 0.0;
  MetricSums metrics;  // of the training-mode outputs, from the loss phase

  // Profiling (the trainer's profile_phases): when `profile` is on, run_phase adds the time of
  // each piece of work to `seconds`; off, it reads no clock. The trainer zeroes `seconds`.
  bool profile = false;
  PhaseSeconds seconds;
};

// Checks a spec as Model's constructor does (positive inputs and widths, a dense layer, batch
// norm and dropout settings in range, two outputs for xent); throws Error naming the layer.
void validate(const ModelSpec& spec);

// Whether layer k writes its output over the output of layer k − 1 (Network::output_slot):
// an activation above a layer that is not one.
bool writes_in_place(std::span<const LayerSpec> layers, std::size_t k);

// 2 × (dense weights): the FLOPs of one row's forward pass, from the spec alone (validated,
// nothing allocated).
double forward_flops_per_row(const ModelSpec& spec);

struct Network {
  ModelSpec spec;
  std::vector<Layer> layers;
  std::vector<int> widths;  // output width of each layer
  // Which layer's buffer in ShardWorkspace::outputs holds each layer's output. An activation
  // above a layer whose backward pass never reads that layer's output (dense, batch norm,
  // dropout) overwrites it in place: a buffer and a pass of memory traffic fewer, and the
  // activation's backward only needs its own output. Otherwise the layer's own.
  std::vector<std::size_t> output_slot;
  std::vector<int> batch_norms;  // layer indices of the batch-norm layers, in order
  std::vector<TensorInfo> tensors;
  std::size_t parameter_count = 0;  // floats
  std::size_t counter_count = 0;    // int64 counters
  std::size_t first_trainable = 0;  // layers below it need no backward pass
  int max_width = 0;
  AlignedFloats parameters;
  std::vector<std::int64_t> counters;
  // predict's and evaluation's per-thread workspaces (not copied with the network).
  InferenceWorkspaces inference;

  explicit Network(ModelSpec model_spec);  // validates and lays out; all values zero

  int outputs() const { return widths.back(); }
  ShardWorkspace make_workspace(int capacity_rows) const;
  // Only what forward() uses: the layers' outputs.
  ShardWorkspace make_inference_workspace(int capacity_rows) const;
  // One sync per batch-norm layer, in order.
  std::vector<BatchNormSync> make_syncs() const;
  // Batch-norm layer k (k < batch_norms.size()).
  const BatchNorm& batch_norm(int k) const;

  // Inference: batch norm uses running statistics. x: [rows ≤ capacity, inputs]. Returns the
  // view of the last layer's output.
  ConstMatrix forward(const float* params, ConstMatrix x, ShardWorkspace& ws) const;

  // --- Training, one shard at a time, in phases -----------------------------------------
  // Phases 0..K−1 run forward up to batch norm k and compute its partial moments; phase K
  // finishes the forward pass, takes the loss and runs backward down to the last batch norm;
  // phases K+1..2K continue backward. After every phase but the last, the trainer combines
  // the shards' partials of batch norm combined_batch_norm(phase) into its BatchNormSync
  // (train/batch_norm_combine.hpp). Without batch norm there is one phase: the whole pass.
  int phase_count() const { return 2 * static_cast<int>(batch_norms.size()) + 1; }
  // Whether phase `phase` ends with the forward moments of a batch norm (else with its
  // backward sums), and which batch norm (k) that is.
  bool ends_with_moments(int phase) const { return phase < static_cast<int>(batch_norms.size()); }
  int combined_batch_norm(int phase) const {
    const int bn_count = static_cast<int>(batch_norms.size());
    return phase < bn_count ? phase : 2 * bn_count - 1 - phase;
  }

  // x: [rows, inputs], targets: this shard's rows, scale: 1/B for the whole minibatch, key:
  // which dropout masks this shard's rows draw.
  void begin_pass(ShardWorkspace& ws, ConstMatrix x, const float* targets, float scale,
                  DropoutKey key = {}) const;
  // Writes every trained parameter's gradient into grads by the end of the last phase.
  // layer_done, when given, is called with a layer's index as soon as this shard's gradient of
  // that layer's parameters is complete (a gradient exchange can start sending it).
  void run_phase(int phase, const float* params, std::span<const BatchNormSync> syncs,
                 ShardWorkspace& ws, float* grads,
                 const std::function<void(int layer)>* layer_done = nullptr) const;
  // One whole-minibatch training pass on a single shard (no running-statistics update):
  // the reference the sharded step is compared with, and the tests' gradient.
  double training_pass(const float* params, ConstMatrix x, const float* targets, float scale,
                       ShardWorkspace& ws, float* grads, DropoutKey key = {}) const;
};

// The network behind a Model, for the library's own use (the trainer, evaluation, the C API);
// the public header only names it.
struct ModelAccess {
  static const Network& network(const Model& model) { return *model.network_; }
};
inline const Network& network_of(const Model& model) { return ModelAccess::network(model); }

}  // namespace shardprop::detail
