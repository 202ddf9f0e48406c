// Per-shard gradient buffers that mirror the flat parameter layout, their fixed-order
// reduction (the update rules that consume it are in optimizer.hpp). Each parameter's sum runs over
// shards 0, 1, …, S−1 in that order whatever thread computes it, so results are bitwise independent
// of the thread count.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "base/aligned.hpp"
#include "shardprop/model.hpp"

namespace shardprop::detail {

class GradientBuffers {
 public:
  GradientBuffers(int shards, std::size_t parameter_count);
  float* shard(int s) { return storage_.data() + static_cast<std::size_t>(s) * stride_; }
  const float* shard(int s) const {
    return storage_.data() + static_cast<std::size_t>(s) * stride_;
  }
  int shards() const { return shards_; }

 private:
  int shards_;
  std::size_t stride_;
  AlignedFloats storage_;
};

// A contiguous run of parameters updated alike (one tensor, or a piece of a large one).
struct ParameterSegment {
  std::size_t begin = 0;
  std::size_t end = 0;
  bool decayed = false;
};

// The model's trained tensors cut into segments of at most max_floats, the unit of parallel update;
// the first trained tensor (the bottom layer's weight) into an even number of them.
std::vector<ParameterSegment> parameter_segments(const std::vector<TensorInfo>& tensors,
                                                 std::size_t max_floats);

// out[i] = Σ_{s < active} buffers.shard(s)[i] for i in the segment, in shard order.
void reduce_gradients(const GradientBuffers& buffers, int active, ParameterSegment segment,
                      float* out);

}  // namespace shardprop::detail
