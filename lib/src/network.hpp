// The layer stack behind a Model: layer kinds, the flat parameter layout, and the forward and
// backward pass over one shard's rows into that shard's workspace and gradient buffer.
#pragma once

#include <cstddef>
#include <variant>
#include <vector>

#include "activation.hpp"
#include "aligned.hpp"
#include "dense.hpp"
#include "matrix.hpp"
#include "shardprop/model.hpp"

namespace shardprop::detail {

using Layer = std::variant<Dense, ActivationLayer>;

// Everything one shard's pass writes, sized once for `capacity_rows` rows.
struct ShardWorkspace {
  int capacity_rows = 0;
  std::vector<AlignedFloats> outputs;  // per layer: [capacity_rows, width]
  AlignedFloats delta_a, delta_b;      // ping-pong dL/d(activations): [capacity_rows, max width]
};

struct Network {
  ModelSpec spec;
  std::vector<Layer> layers;
  std::vector<int> widths;  // output width of each layer
  std::vector<TensorInfo> tensors;
  std::size_t parameter_count = 0;
  int max_width = 0;
  AlignedFloats parameters;

  explicit Network(ModelSpec model_spec);  // validates and lays out; parameters zero

  int outputs() const { return widths.back(); }
  ShardWorkspace make_workspace(int capacity_rows) const;
  // Multiply-adds of one row's forward pass (weights count); the step does about 3× that.
  double forward_flops_per_row() const;

  // Forward over x: [rows ≤ capacity, inputs]. Returns the view of the last layer's output.
  ConstMatrix forward(const float* params, ConstMatrix x, ShardWorkspace& ws) const;
  // Loss delta + backward after forward() on the same x. Writes every parameter's gradient
  // into grads (a buffer with the parameter layout). Returns Σ_rows loss.
  double backward(const float* params, ConstMatrix x, const float* targets, float scale,
                  ShardWorkspace& ws, float* grads) const;
};

}  // namespace shardprop::detail
