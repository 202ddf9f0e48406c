// Fixed-order gradient reduction and the fused SGD update.
#include "gradient_buffer.hpp"

#include "simd.hpp"

#include <algorithm>

namespace shardprop::detail {

GradientBuffers::GradientBuffers(int shards, std::size_t parameter_count)
    : shards_(shards),
      stride_(pad_to_line(parameter_count)),
      storage_(static_cast<std::size_t>(shards) * stride_, 0.0f) {}

std::vector<ParameterSegment> parameter_segments(const std::vector<TensorInfo>& tensors,
                                                 std::size_t max_floats) {
  std::vector<ParameterSegment> segments;
  for (const TensorInfo& t : tensors) {
    if (!t.trained()) continue;  // running statistics change in the forward pass, not by SGD
    const bool decayed = t.role == TensorRole::weight;
    for (std::size_t begin = t.offset; begin < t.offset + t.size; begin += max_floats) {
      segments.push_back({begin, std::min(begin + max_floats, t.offset + t.size), decayed});
    }
  }
  return segments;
}

void reduce_gradients(const GradientBuffers& buffers, int active, ParameterSegment segment,
                      float* out) {
  const std::size_t n = segment.end - segment.begin;
  std::copy_n(buffers.shard(0) + segment.begin, n, out);
  for (int s = 1; s < active; ++s) {
    const float* g = buffers.shard(s) + segment.begin;
    for (std::size_t i = 0; i < n; ++i) out[i] += g[i];
  }
}

namespace {

// Up to four shards: one pass that reads each buffer once, no temporary (the sum is formed
// in registers, still in shard order).
template <int kShards>
SHARDPROP_MULTIVERSION void apply_sgd_fused(float* w, const float* const* g, std::size_t n,
                                            float learning_rate, float decay) {
  for (std::size_t i = 0; i < n; ++i) {
    float sum = g[0][i];
    if constexpr (kShards > 1) sum += g[1][i];
    if constexpr (kShards > 2) sum += g[2][i];
    if constexpr (kShards > 3) sum += g[3][i];
    w[i] -= learning_rate * (sum + decay * w[i]);
  }
}

}  // namespace

void apply_sgd(float* params, const GradientBuffers& buffers, int active, ParameterSegment segment,
               float learning_rate, float weight_decay) {
  const float decay = segment.decayed ? weight_decay : 0.0f;
  float* w = params + segment.begin;
  const std::size_t n = segment.end - segment.begin;
  if (active <= 4) {
    const float* g[4] = {};
    for (int s = 0; s < active; ++s) g[s] = buffers.shard(s) + segment.begin;
    switch (active) {
      case 1:
        return apply_sgd_fused<1>(w, g, n, learning_rate, decay);
      case 2:
        return apply_sgd_fused<2>(w, g, n, learning_rate, decay);
      case 3:
        return apply_sgd_fused<3>(w, g, n, learning_rate, decay);
      default:
        return apply_sgd_fused<4>(w, g, n, learning_rate, decay);
    }
  }
  // More shards: blocks small enough to stay in L1 while every buffer is added in order.
  constexpr std::size_t kBlock = 1024;
  alignas(64) float sum[kBlock];
  for (std::size_t begin = segment.begin; begin < segment.end; begin += kBlock) {
    const ParameterSegment block{begin, std::min(begin + kBlock, segment.end), segment.decayed};
    reduce_gradients(buffers, active, block, sum);
    float* wb = params + block.begin;
    for (std::size_t i = 0; i < block.end - block.begin; ++i) {
      wb[i] -= learning_rate * (sum[i] + decay * wb[i]);
    }
  }
}

}  // namespace shardprop::detail
