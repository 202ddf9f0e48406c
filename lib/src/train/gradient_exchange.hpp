// Gradients across ranks: every rank's shard buffers summed in global shard order, the same
// order and so the same bits as one process's reduce_gradients, whatever the rank count. The sum
// travels a pipelined chain, rank 0 → 1 → … → P−1, in pieces: rank r receives the sum of the
// shards before its own for a piece, adds its shards in order and passes it on, while the next
// piece is already on its way; the last rank then broadcasts the total. Each link carries the
// parameters once (and the broadcast once more), as a ring allreduce does, and no sum's order is
// left to MPI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "base/communicator.hpp"
#include "train/gradient_buffer.hpp"

namespace shardprop::detail {

class GradientExchange {
 public:
  GradientExchange(Communicator& comm, std::size_t parameter_count);

  // for_each_block(n, f) calls f(from, to) over disjoint ranges covering [0, n), in any order
  // or in parallel: the elements of a piece are independent.
  using ForEachBlock =
      std::function<void(std::size_t n, const std::function<void(std::size_t, std::size_t)>&)>;

  // The sum over all ranks of their local buffers [0, local_shards) (0 for a rank with no
  // shard this step), in global shard order, as a one-shard buffer. Collective.
  const GradientBuffers& sum(const GradientBuffers& local, int local_shards,
                             const ForEachBlock& for_each_block);

  // Totals since construction, for reports: seconds blocked in communication and bytes sent.
  double wait_seconds() const { return wait_seconds_; }
  std::uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  Communicator& comm_;
  std::size_t parameter_count_;
  std::size_t piece_floats_;
  GradientBuffers total_;
  double wait_seconds_ = 0.0;
  std::uint64_t bytes_sent_ = 0;
};

}  // namespace shardprop::detail
