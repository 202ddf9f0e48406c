// Inverted dropout. Training keeps each value with probability 1 − rate and scales it by
// 1/(1 − rate), so inference is the identity. The mask is a pure function of
// (seed, step, row of the minibatch, layer, feature): shards and threads cannot change it.
#pragma once

#include <cstdint>

#include "base/matrix.hpp"

namespace shardprop::detail {

// Which masks a pass draws: the trainer's seed, its step counter, and the minibatch row of
// this shard's first row (so a shard's rows get the masks they would get unsharded).
struct DropoutKey {
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  std::int64_t first_row = 0;
};

struct Dropout {
  float rate = 0.0f;
  int width = 0;
  int layer = 0;  // position in the stack: two dropout layers draw different masks

  // x, y, mask: [rows, width]. mask receives 0 or 1/(1 − rate) for the backward pass.
  void forward_train(DropoutKey key, ConstMatrix x, Matrix y, Matrix mask) const;
  // delta: dL/dy on entry, dL/dx on return (in place).
  void backward(ConstMatrix mask, Matrix delta) const;
};

}  // namespace shardprop::detail
