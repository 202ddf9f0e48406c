// Fixed-order gradient reduction.
#include "train/gradient_buffer.hpp"

#include <algorithm>

#include "base/simd.hpp"

namespace shardprop::detail {

GradientBuffers::GradientBuffers(int shards, std::size_t parameter_count)
    : shards_(shards),
      stride_(pad_to_line(parameter_count)),
      storage_(static_cast<std::size_t>(shards) * stride_, 0.0f) {}

std::vector<ParameterSegment> parameter_segments(const std::vector<TensorInfo>& tensors,
                                                 std::size_t max_floats) {
  std::vector<ParameterSegment> segments;
  bool bottom = true;
  for (const TensorInfo& t : tensors) {
    if (!t.trained()) continue;  // running statistics change in the forward pass, not by SGD
    const bool decayed = t.role == TensorRole::weight;
    std::size_t piece = max_floats;
    if (bottom) {
      // The bottom layer's gradient is the last every shard finishes, so its update is the
      // step's tail, when every thread is free: an even number of pieces lets two (or four)
      // threads share it. Whole cache lines each (a tensor of one line stays whole), and never
      // a function of the thread count, which would change the norm's bits.
      const std::size_t pairs =
          std::max<std::size_t>(1, (t.size + 2 * max_floats - 1) / (2 * max_floats));
      const std::size_t even = (t.size + 2 * pairs - 1) / (2 * pairs);
      piece = pad_to_line(std::max<std::size_t>(even, 1));
      bottom = false;
    }
    for (std::size_t begin = t.offset; begin < t.offset + t.size; begin += piece) {
      segments.push_back({begin, std::min(begin + piece, t.offset + t.size), decayed});
    }
  }
  return segments;
}

SHARDPROP_MULTIVERSION
void reduce_gradients(const GradientBuffers& buffers, int active, ParameterSegment segment,
                      float* out) {
  const std::size_t n = segment.end - segment.begin;
  const float* g0 = buffers.shard(0) + segment.begin;
  if (active == 1) {
    std::copy_n(g0, n, out);
    return;
  }
  // The first addition reads shard 0 directly rather than after a copy: the same sums, one
  // pass less.
  const float* g1 = buffers.shard(1) + segment.begin;
  for (std::size_t i = 0; i < n; ++i) out[i] = g0[i] + g1[i];
  for (int s = 2; s < active; ++s) {
    const float* g = buffers.shard(s) + segment.begin;
    for (std::size_t i = 0; i < n; ++i) out[i] += g[i];
  }
}

}  // namespace shardprop::detail
