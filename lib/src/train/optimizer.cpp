// Update kernels. Each segment is processed in L1-sized blocks: the shard-order gradient sum
// goes to a block buffer once, then the rule's loop runs over it; both vectorise.
#include "train/optimizer.hpp"

#include <algorithm>
#include <cmath>

#include "base/simd.hpp"

namespace shardprop::detail {
namespace {

constexpr std::size_t kBlock = 1024;
constexpr int kLanes = 16;

// Squares summed in 16 independent float lanes (vectorisable without reassociation), then
// the lanes in order in double.
SHARDPROP_MULTIVERSION double block_squares(const float* sum, std::size_t n) {
  float lanes[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += sum[i + j] * sum[i + j];
  }
  for (int j = 0; i < n; ++i, ++j) lanes[j] += sum[i] * sum[i];
  double total = 0.0;
  for (float lane : lanes) total += lane;
  return total;
}

SHARDPROP_MULTIVERSION void sgd_block(float* w, const float* sum, std::size_t n, float lr,
                                      float decay, float scale) {
  for (std::size_t i = 0; i < n; ++i) w[i] -= lr * (scale * sum[i] + decay * w[i]);
}

// torch.optim.SGD: buf = μ·buf + g; step = nesterov ? g + μ·buf : buf.
SHARDPROP_MULTIVERSION void momentum_block(float* w, float* buf, const float* sum, std::size_t n,
                                           float lr, float decay, float scale, float mu,
                                           bool nesterov) {
  if (nesterov) {
    for (std::size_t i = 0; i < n; ++i) {
      const float g = scale * sum[i] + decay * w[i];
      buf[i] = mu * buf[i] + g;
      w[i] -= lr * (g + mu * buf[i]);
    }
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const float g = scale * sum[i] + decay * w[i];
    buf[i] = mu * buf[i] + g;
    w[i] -= lr * buf[i];
  }
}

// torch.optim.Adam: w −= (lr / bc1) · m / (√v / √bc2 + ε).
SHARDPROP_MULTIVERSION void adam_block(float* w, float* m, float* v, const float* sum,
                                       std::size_t n, const UpdateRule& r, float decay) {
  const float step_size = r.learning_rate / r.bias_correction1;
  const float sqrt_bc2 = std::sqrt(r.bias_correction2);
  const float b1 = r.beta1, b2 = r.beta2, eps = r.epsilon, scale = r.gradient_scale;
  for (std::size_t i = 0; i < n; ++i) {
    const float g = scale * sum[i] + decay * w[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    w[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps);
  }
}

}  // namespace

int optimizer_slots(const TrainerSettings& settings) {
  if (settings.optimizer == Optimizer::adam) return 2;
  return settings.momentum > 0.0f ? 1 : 0;
}

double summed_gradient_squares(const GradientBuffers& buffers, int active,
                               ParameterSegment segment) {
  alignas(64) float sum[kBlock];
  double total = 0.0;
  for (std::size_t begin = segment.begin; begin < segment.end; begin += kBlock) {
    const ParameterSegment block{begin, std::min(begin + kBlock, segment.end), segment.decayed};
    reduce_gradients(buffers, active, block, sum);
    total += block_squares(sum, block.end - block.begin);
  }
  return total;
}

double apply_update(float* params, float* state0, float* state1, const GradientBuffers& buffers,
                    int active, ParameterSegment segment, const UpdateRule& rule) {
  const float decay = segment.decayed ? rule.weight_decay : 0.0f;
  alignas(64) float block_sum[kBlock];
  double total = 0.0;
  for (std::size_t begin = segment.begin; begin < segment.end; begin += kBlock) {
    const ParameterSegment block{begin, std::min(begin + kBlock, segment.end), segment.decayed};
    const std::size_t n = block.end - block.begin;
    // One shard's buffer is already the sum: no copy.
    const float* sum = block_sum;
    if (active == 1) {
      sum = buffers.shard(0) + begin;
    } else {
      reduce_gradients(buffers, active, block, block_sum);
    }
    total += block_squares(sum, n);
    float* w = params + begin;
    if (rule.optimizer == Optimizer::adam) {
      adam_block(w, state0 + begin, state1 + begin, sum, n, rule, decay);
    } else if (state0 != nullptr) {
      momentum_block(w, state0 + begin, sum, n, rule.learning_rate, decay, rule.gradient_scale,
                     rule.momentum, rule.nesterov);
    } else {
      sgd_block(w, sum, n, rule.learning_rate, decay, rule.gradient_scale);
    }
  }
  return total;
}

}  // namespace shardprop::detail
