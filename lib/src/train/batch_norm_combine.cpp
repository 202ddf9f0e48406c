// Gathering batch-norm partials. Each process sends a block of its shards' slots (ranks hold
// contiguous groups of shards, in rank order), so reading the blocks in rank order and the
// slots in order visits the global shards 0..S−1: the same merge, and the same bits, for any
// number of processes. One process: the gather is a copy and the order is shard 0, 1, ….
#include "train/batch_norm_combine.hpp"

#include <algorithm>
#include <cassert>

namespace shardprop::detail {

BatchNormCombine::BatchNormCombine(const Network& net, int max_local_shards, Communicator& comm)
    : net_(net), comm_(comm), max_local_shards_(max_local_shards) {
  std::size_t largest = 0;
  for (std::size_t k = 0; k < net.batch_norms.size(); ++k) {
    const int w = net.batch_norm(static_cast<int>(k)).width;
    syncs_.emplace_back(w);
    largest =
        std::max({largest, BatchNormPartials::moments_size(w), BatchNormPartials::sums_size(w)});
  }
  const std::size_t block = 1 + static_cast<std::size_t>(max_local_shards) * largest;
  local_.assign(net.batch_norms.empty() ? 0 : block, 0.0);
  gathered_.assign(local_.size() * static_cast<std::size_t>(comm.size()), 0.0);
}

void BatchNormCombine::after_phase(int phase, std::span<const ShardWorkspace> shards, float* params,
                                   std::int64_t* counters) {
  const int k = net_.combined_batch_norm(phase);
  if (net_.ends_with_moments(phase)) {
    combine_moments(k, shards, params, counters);
  } else {
    combine_sums(k, shards, params);
  }
}

std::size_t BatchNormCombine::gather(int k, std::span<const ShardWorkspace> shards,
                                     std::size_t offset, std::size_t size) {
  assert(static_cast<int>(shards.size()) <= max_local_shards_);
  const std::size_t block = 1 + static_cast<std::size_t>(max_local_shards_) * size;
  local_[0] = static_cast<double>(shards.size());
  for (std::size_t s = 0; s < shards.size(); ++s) {
    const double* partial = shards[s].partials[static_cast<std::size_t>(k)].data() + offset;
    std::copy_n(partial, size, local_.data() + 1 + s * size);
  }
  comm_.allgather(
      std::span<const double>(local_.data(), block),
      std::span<double>(gathered_.data(), block * static_cast<std::size_t>(comm_.size())));
  return block;
}

template <class F>
void BatchNormCombine::for_each_shard(std::size_t block, std::size_t size, F&& f) const {
  for (int r = 0; r < comm_.size(); ++r) {
    const double* from = gathered_.data() + static_cast<std::size_t>(r) * block;
    const auto count = static_cast<std::size_t>(from[0]);
    for (std::size_t s = 0; s < count; ++s) f(from + 1 + s * size);
  }
}

void BatchNormCombine::combine_moments(int k, std::span<const ShardWorkspace> shards, float* params,
                                       std::int64_t* counters) {
  const BatchNorm& layer = net_.batch_norm(k);
  BatchNormSync& sync = syncs_[static_cast<std::size_t>(k)];
  const std::size_t size = BatchNormPartials::moments_size(layer.width);
  const std::size_t block = gather(k, shards, 0, size);
  sync.begin_moments();
  for_each_shard(block, size, [&](const double* moments) { sync.merge_moments(moments); });
  sync.finish_moments(layer);
  if (params != nullptr) sync.update_running_statistics(layer, params, counters);
}

void BatchNormCombine::combine_sums(int k, std::span<const ShardWorkspace> shards,
                                    const float* params) {
  const BatchNorm& layer = net_.batch_norm(k);
  BatchNormSync& sync = syncs_[static_cast<std::size_t>(k)];
  const std::size_t size = BatchNormPartials::sums_size(layer.width);
  const std::size_t block = gather(k, shards, BatchNormPartials::sums_offset(layer.width), size);
  sync.begin_sums();
  for_each_shard(block, size, [&](const double* sums) { sync.add_sums(sums); });
  sync.finish_sums(layer, params);
}

}  // namespace shardprop::detail
