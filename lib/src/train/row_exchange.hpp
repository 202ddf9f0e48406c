// The rows of a minibatch, when the dataset is spread over ranks: the minibatch is a list of the
// whole dataset's row indices (a slice of the epoch's permutation, or the rows a streamed
// shuffle let out); each rank needs the rows at the positions of its shards, and each row lives
// on the rank that read it. One all-to-all per step moves them: every rank packs the rows it
// holds for each rank, in position order, and unpacks what it receives in the order of its own
// positions.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/communicator.hpp"
#include "train/shard_plan.hpp"

namespace shardprop::detail {

class RowExchange {
 public:
  RowExchange(Communicator& comm, int inputs, int target_width);

  // Learns where every rank's rows start in the whole: this rank holds `rows` rows from
  // `first_row` of `total_rows`. Collective; once per epoch.
  void begin_epoch(std::int64_t first_row, std::int64_t rows, std::int64_t total_rows);

  // The rank holding row `row` of the whole.
  int owner_of(std::int64_t row) const;

  // Writes the rows at this rank's positions of the minibatch `batch` (whole-dataset row
  // indices, plan.rows of them) to features and targets, in position order. copy_row(p, x, t)
  // copies the row at position p, which this rank holds, to x and t. Collective.
  using CopyRow = std::function<void(int position, float* x, float* t)>;
  void gather(std::span<const std::int64_t> batch, const ShardPlan& plan, const CopyRow& copy_row,
              float* features, float* targets);

 private:
  Communicator& comm_;
  int inputs_, target_width_;
  std::vector<std::int64_t> starts_;  // rank r holds rows [starts_[r], starts_[r + 1])
  std::vector<float> send_, receive_;
  std::vector<int> send_counts_, receive_counts_, cursor_;
};

}  // namespace shardprop::detail
