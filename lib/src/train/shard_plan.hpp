// How a minibatch's rows are split into shards: contiguous ranges in row order whose sizes
// differ by at most one (the first rows % shards shards get the extra row).
#pragma once

namespace shardprop::detail {

struct ShardPlan {
  int rows = 0;
  int shards = 0;  // shards that hold rows: min(requested, rows)

  ShardPlan(int row_count, int requested_shards);
  int begin(int shard) const;
  int size(int shard) const;
};

}  // namespace shardprop::detail

namespace shardprop::detail {

// The contiguous group of a plan's shards (and so of its rows) that one rank runs: ranks split
// the shards as a plan splits rows (the first shards % ranks ranks take one more). A rank past
// the shard count has none.
struct RankShards {
  int first_shard = 0;
  int shard_count = 0;
  int first_row = 0;
  int row_count = 0;

  RankShards(const ShardPlan& plan, int ranks, int rank);
};

}  // namespace shardprop::detail
