// Batch norm across shards, the trainer's half: collects every shard's partials (this
// process's from their workspaces, other processes' through the communicator) and merges them
// in one canonical order, global shard 0, 1, …, S−1, whichever process or thread computed
// them. The merge arithmetic is the layer's (nn/batch_norm_sync.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/communicator.hpp"
#include "nn/batch_norm_sync.hpp"
#include "nn/network.hpp"

namespace shardprop::detail {

class BatchNormCombine {
 public:
  // max_local_shards: the most shards this process ever runs in one step (the same on every
  // process). Sizes every buffer once. net and comm must outlive the combine.
  BatchNormCombine(const Network& net, int max_local_shards, Communicator& comm);

  std::span<const BatchNormSync> syncs() const { return syncs_; }

  // After training phase `phase` (not the last) of Network::run_phase: combines what the
  // shards wrote in that phase, updating the running statistics and counters in params and
  // counters after a forward phase. shards: this process's shards, in global shard order.
  void after_phase(int phase, std::span<const ShardWorkspace> shards, float* params,
                   std::int64_t* counters);

  // Forward: the moments of batch norm k's input → μ, 1/√(σ² + ε) and, when params is not
  // null, the running statistics and counter in params and counters.
  void combine_moments(int k, std::span<const ShardWorkspace> shards, float* params,
                       std::int64_t* counters);
  // Backward: Σdy and Σdy·xhat of batch norm k's output → γ·inv_std, Σdy/B, Σ(dy·xhat)/B.
  void combine_sums(int k, std::span<const ShardWorkspace> shards, const float* params);

 private:
  // Gathers every process's shards' part [offset, offset + size) of partials[k] into
  // gathered_, one block per process in rank order: [shard count, slot 0, slot 1, …]. Returns
  // the block size.
  std::size_t gather(int k, std::span<const ShardWorkspace> shards, std::size_t offset,
                     std::size_t size);
  // Calls f(slot) for every gathered shard's slot, in global shard order.
  template <class F>
  void for_each_shard(std::size_t block, std::size_t size, F&& f) const;

  const Network& net_;
  Communicator& comm_;
  int max_local_shards_;
  std::vector<BatchNormSync> syncs_;
  std::vector<double> local_, gathered_;  // one block; comm.size() blocks
};

}  // namespace shardprop::detail
