// The update rules (SGD, SGD with momentum or Nesterov momentum, Adam) applied segment by
// segment to the flat parameter array, reading the shard gradient buffers in shard order.
// The formulas are PyTorch's torch.optim.SGD (dampening 0) and torch.optim.Adam (L2 weight
// decay added to the gradient), so a run can be checked against them.
#pragma once

#include <cstddef>

#include "shardprop/trainer.hpp"
#include "train/gradient_buffer.hpp"

namespace shardprop::detail {

// One step's constants, the same for every segment.
struct UpdateRule {
  Optimizer optimizer = Optimizer::sgd;
  float learning_rate = 0.0f;
  float weight_decay = 0.0f;  // applied only to segments marked decayed
  float momentum = 0.0f;
  bool nesterov = false;
  float beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f;
  float bias_correction1 = 1.0f, bias_correction2 = 1.0f;  // 1 − β^t for Adam's step t
  float gradient_scale = 1.0f;  // gradient-norm clipping: the summed gradient is multiplied by it
};

// Optimizer state slots per parameter: 0 (SGD), 1 (momentum buffer), 2 (Adam's m and v).
int optimizer_slots(const TrainerSettings& settings);

// Σ_i (Σ_s g_s[i])² over the segment, the shard sum in shard order and the squares summed in a
// fixed order (16 lanes, then the lanes in order): the same bits whatever thread runs it.
double summed_gradient_squares(const GradientBuffers& buffers, int active,
                               ParameterSegment segment);

// Applies the rule to params[segment] with g = gradient_scale · Σ_s g_s + λ·w. state0 and
// state1 are the slots (nullptr when unused), laid out like params. Returns the segment's sum
// of squares of Σ_s g_s (before scaling), as summed_gradient_squares would.
double apply_update(float* params, float* state0, float* state1, const GradientBuffers& buffers,
                    int active, ParameterSegment segment, const UpdateRule& rule);

}  // namespace shardprop::detail
