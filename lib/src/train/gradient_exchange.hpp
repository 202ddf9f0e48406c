// Gradients across ranks: every rank's shard buffers summed in global shard order, the same
// order and so the same bits as one process's reduce_gradients, whatever the rank count. The sum
// travels a pipelined chain, rank 0 → 1 → … → P−1, in pieces: rank r receives the sum of the
// shards before its own for a piece, adds its shards in order and passes it on, while the next
// piece is already on its way; the last rank then broadcasts the total. Each link carries the
// parameters once (and the broadcast once more), as a ring allreduce does, and no sum's order is
// left to MPI.
//
// Pieces travel layer by layer, the last layer first, as the backward pass completes them. When
// MPI allows calls from two threads at once, a communication thread runs the chain during the
// backward pass: a layer's pieces leave as soon as every local shard has written that layer's
// gradient, and the update waits only for the rest. Otherwise the chain runs after it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "base/communicator.hpp"
#include "shardprop/model.hpp"
#include "train/gradient_buffer.hpp"

namespace shardprop::detail {

class GradientExchange {
 public:
  // tensors: the model's, for the layers' parameter ranges. overlap: run the chain on a
  // communication thread during the backward pass, if the communicator allows it.
  GradientExchange(Communicator& comm, const std::vector<TensorInfo>& tensors,
                   std::size_t parameter_count, bool overlap);
  ~GradientExchange();
  GradientExchange(const GradientExchange&) = delete;
  GradientExchange& operator=(const GradientExchange&) = delete;

  // Whether the chain runs during the backward pass (MPI_THREAD_MULTIPLE).
  bool overlaps() const { return thread_.joinable(); }

  // Starts a step's exchange of local buffers [0, local_shards) (0 for a rank with no shard this
  // step). With overlap, the chain starts on its thread. Collective, with finish().
  void begin(const GradientBuffers& local, int local_shards);
  // A local shard has written layer `layer`'s gradient. Thread-safe; any thread.
  void layer_done(int layer);
  // for_each_block(n, f) calls f(from, to) over disjoint ranges covering [0, n), in any order
  // or in parallel: the elements of a piece are independent.
  using ForEachBlock =
      std::function<void(std::size_t n, const std::function<void(std::size_t, std::size_t)>&)>;
  // The sum over all ranks of their local buffers, in global shard order, as a one-shard
  // buffer: runs or waits for the chain, then the broadcast. Collective.
  const GradientBuffers& finish(const ForEachBlock& for_each_block);

  // Totals since construction, for reports: seconds the driving thread was blocked in the
  // exchange (after the backward pass), and bytes this rank sent.
  double wait_seconds() const { return wait_seconds_; }
  std::uint64_t bytes_sent() const { return bytes_sent_; }

 private:
  struct Bucket {
    int layer = 0;
    std::size_t begin = 0, end = 0;  // its parameters in the flat layout
  };
  // The chain over every bucket, the last layer's first; waits for each bucket's local shards.
  // patient: poll and sleep while waiting (the communication thread) rather than block.
  void run_chain(const ForEachBlock& for_each_block, bool patient);
  void wait_until_ready(std::size_t bucket);
  void communication_thread();

  Communicator& comm_;
  std::size_t parameter_count_;
  std::size_t piece_floats_;
  std::vector<Bucket> buckets_;       // in chain order: last layer first
  std::vector<int> bucket_of_layer_;  // -1 for layers without parameters
  GradientBuffers total_;

  // The step in progress.
  const GradientBuffers* local_ = nullptr;
  int local_shards_ = 0;
  std::vector<std::atomic<int>> pending_;  // per bucket: local shards still computing it

  // The communication thread and what it is told.
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool step_started_ = false, step_finished_ = false;
  std::atomic<bool> stopping_ = false;  // also read while polling, without the mutex
  std::exception_ptr failure_;

  double wait_seconds_ = 0.0;
  std::uint64_t bytes_sent_ = 0;
};

}  // namespace shardprop::detail
