// Packing and unpacking rows for the all-to-all. In one process the rows are copied straight
// to their positions.
#include "train/row_exchange.hpp"

#include <algorithm>
#include <string>

#include "shardprop/communicator.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {

RowExchange::RowExchange(Communicator& comm, int inputs, int target_width)
    : comm_(comm), inputs_(inputs), target_width_(target_width) {
  const auto ranks = static_cast<std::size_t>(comm.size());
  send_counts_.assign(ranks, 0);
  receive_counts_.assign(ranks, 0);
  cursor_.assign(ranks, 0);
}

void RowExchange::begin_epoch(std::int64_t first_row, std::int64_t rows, std::int64_t total_rows) {
  const std::vector<std::int64_t> firsts = comm_.allgather(first_row);
  const std::vector<std::int64_t> counts = comm_.allgather(rows);
  starts_.assign(firsts.begin(), firsts.end());
  starts_.push_back(total_rows);
  for (std::size_t r = 0; r < counts.size(); ++r) {
    if (starts_[r] + counts[r] != starts_[r + 1]) {
      throw CollectiveError("dataset part of rank " + std::to_string(r) + ": rows " +
                            std::to_string(starts_[r]) + " + " + std::to_string(counts[r]) +
                            " do not meet the next part at " + std::to_string(starts_[r + 1]));
    }
  }
}

int RowExchange::owner_of(std::int64_t row) const {
  // The last rank whose first row is <= row (a rank without rows shares its start with the next).
  const auto at = std::upper_bound(starts_.begin(), starts_.end() - 1, row);
  return static_cast<int>(at - starts_.begin()) - 1;
}

void RowExchange::gather(std::span<const std::int64_t> batch, const ShardPlan& plan,
                         const CopyRow& copy_row, float* features, float* targets) {
  const int me = comm_.rank();
  const int ranks = comm_.size();
  const auto x_floats = static_cast<std::size_t>(inputs_);
  const auto t_floats = static_cast<std::size_t>(target_width_);
  if (ranks == 1) {
    for (int p = 0; p < plan.rows; ++p)
      copy_row(p, features + p * x_floats, targets + p * t_floats);
    return;
  }
  const RankShards mine(plan, ranks, me);
  const auto row_floats = static_cast<int>(x_floats + t_floats);
  send_.resize(static_cast<std::size_t>(plan.rows) * row_floats);
  std::size_t packed = 0;
  for (int q = 0; q < ranks; ++q) {
    const RankShards theirs(plan, ranks, q);
    int sent = 0;
    for (int p = theirs.first_row; p < theirs.first_row + theirs.row_count; ++p) {
      if (owner_of(batch[p]) != me) continue;
      float* row = send_.data() + packed;
      copy_row(p, row, row + x_floats);
      packed += static_cast<std::size_t>(row_floats);
      ++sent;
    }
    send_counts_[q] = sent * row_floats;
  }
  std::fill(receive_counts_.begin(), receive_counts_.end(), 0);
  for (int p = mine.first_row; p < mine.first_row + mine.row_count; ++p) {
    receive_counts_[owner_of(batch[p])] += row_floats;
  }
  receive_.resize(static_cast<std::size_t>(mine.row_count) * row_floats);
  comm_.all_to_all(std::span<const float>(send_.data(), packed), send_counts_, receive_,
                   receive_counts_);
  // Each owner's block holds its rows in position order: walk my positions, one cursor per owner.
  int offset = 0;
  for (int q = 0; q < ranks; ++q) {
    cursor_[q] = offset;
    offset += receive_counts_[q];
  }
  for (int i = 0; i < mine.row_count; ++i) {
    const int owner = owner_of(batch[mine.first_row + i]);
    const float* row = receive_.data() + cursor_[owner];
    cursor_[owner] += row_floats;
    std::copy_n(row, x_floats, features + static_cast<std::size_t>(i) * x_floats);
    std::copy_n(row + x_floats, t_floats, targets + static_cast<std::size_t>(i) * t_floats);
  }
}

}  // namespace shardprop::detail
