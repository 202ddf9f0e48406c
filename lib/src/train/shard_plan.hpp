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
