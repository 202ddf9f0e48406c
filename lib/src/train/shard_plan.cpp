// Shard boundaries depend on (rows, shards) only, never on threads: the basis of determinism.
#include "train/shard_plan.hpp"

#include <algorithm>

namespace shardprop::detail {

ShardPlan::ShardPlan(int row_count, int requested_shards)
    : rows(row_count), shards(std::max(1, std::min(requested_shards, row_count))) {}

int ShardPlan::begin(int shard) const {
  const int base = rows / shards;
  const int extra = rows % shards;
  return shard * base + std::min(shard, extra);
}

int ShardPlan::size(int shard) const { return rows / shards + (shard < rows % shards ? 1 : 0); }

}  // namespace shardprop::detail

namespace shardprop::detail {

RankShards::RankShards(const ShardPlan& plan, int ranks, int rank) {
  const int base = plan.shards / ranks;
  const int extra = plan.shards % ranks;
  first_shard = rank * base + std::min(rank, extra);
  shard_count = base + (rank < extra ? 1 : 0);
  first_row = first_shard < plan.shards ? plan.begin(first_shard) : plan.rows;
  const int end_shard = first_shard + shard_count;
  row_count = (end_shard < plan.shards ? plan.begin(end_shard) : plan.rows) - first_row;
}

}  // namespace shardprop::detail
