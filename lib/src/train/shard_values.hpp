// A few numbers per shard (a step's loss and metric sums) gathered from every rank and read in
// global shard order, so that adding them up gives the same bits for any rank count. Ranks hold
// contiguous groups of shards in rank order, so the blocks in rank order are the shards in
// order. A stop request travels with them, so that every rank learns at the same step that one
// of them was asked to stop.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "base/communicator.hpp"

namespace shardprop::detail {

class ShardValues {
 public:
  // max_local_shards: the most shards a rank runs in one step (the same on every rank).
  ShardValues(Communicator& comm, int max_local_shards, std::size_t values_per_shard)
      : comm_(comm),
        per_shard_(values_per_shard),
        block_(kHeader + static_cast<std::size_t>(max_local_shards) * values_per_shard),
        local_(block_, 0.0),
        all_(block_ * static_cast<std::size_t>(comm.size()), 0.0) {}

  // Where this rank writes the values of its s-th shard.
  double* local(int s) {
    return local_.data() + kHeader + static_cast<std::size_t>(s) * per_shard_;
  }

  // Gathers every rank's first local_shards blocks and its stop request (0: none). Collective.
  void gather(int local_shards, int stop_request) {
    local_[0] = static_cast<double>(local_shards);
    local_[1] = static_cast<double>(stop_request);
    comm_.allgather(std::span<const double>(local_), std::span<double>(all_));
  }

  // The largest stop request of the last gather: the same on every rank.
  int stop_request() const {
    double largest = 0.0;
    for (int r = 0; r < comm_.size(); ++r) {
      largest = std::max(largest, all_[static_cast<std::size_t>(r) * block_ + 1]);
    }
    return static_cast<int>(largest);
  }

  // f(values) for every shard of the last gather, in global shard order.
  template <class F>
  void for_each(F&& f) const {
    for (int r = 0; r < comm_.size(); ++r) {
      const double* from = all_.data() + static_cast<std::size_t>(r) * block_;
      const auto count = static_cast<std::size_t>(from[0]);
      for (std::size_t s = 0; s < count; ++s) f(from + kHeader + s * per_shard_);
    }
  }

 private:
  static constexpr std::size_t kHeader = 2;  // the shard count and the stop request
  Communicator& comm_;
  std::size_t per_shard_, block_;
  std::vector<double> local_, all_;
};

}  // namespace shardprop::detail
