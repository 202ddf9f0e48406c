// The ordered chain. Every receive is posted up front, so a rank takes in piece k + 1 while it
// adds and passes on piece k. Pieces shrink as ranks grow (about four per rank, 16 KiB to 1 MiB):
// the last rank waits for the first piece to cross every link before the pipeline is full, so
// smaller pieces start it sooner, and larger ones cost fewer messages.
#include "train/gradient_exchange.hpp"

#include <algorithm>
#include <chrono>
#include <span>

namespace shardprop::detail {
namespace {

constexpr std::size_t kMinPieceFloats = std::size_t{4} * 1024;
constexpr std::size_t kMaxPieceFloats = std::size_t{256} * 1024;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

GradientExchange::GradientExchange(Communicator& comm, std::size_t parameter_count)
    : comm_(comm),
      parameter_count_(parameter_count),
      piece_floats_(std::clamp(parameter_count / (4 * static_cast<std::size_t>(comm.size())),
                               kMinPieceFloats, kMaxPieceFloats)),
      total_(1, parameter_count) {}

const GradientBuffers& GradientExchange::sum(const GradientBuffers& local, int local_shards,
                                             const ForEachBlock& for_each_block) {
  const int rank = comm_.rank();
  const int last = comm_.size() - 1;
  float* total = total_.shard(0);
  auto piece_of = [&](std::size_t begin) {
    return std::span<float>(total + begin, std::min(piece_floats_, parameter_count_ - begin));
  };
  if (rank > 0) {
    for (std::size_t begin = 0; begin < parameter_count_; begin += piece_floats_) {
      comm_.start_receive(piece_of(begin), rank - 1);
    }
  }
  int transfer = 0;
  for (std::size_t begin = 0; begin < parameter_count_; begin += piece_floats_) {
    const std::span<float> piece = piece_of(begin);
    if (rank > 0) {
      const auto start = Clock::now();
      comm_.wait(transfer++);
      wait_seconds_ += seconds_since(start);
    }
    // Rank 0 always holds shard 0: the sum starts as its copy, as reduce_gradients' does. Each
    // element's sum runs over the shards in order, whichever thread adds it.
    for_each_block(piece.size(), [&](std::size_t from, std::size_t to) {
      float* out = piece.data();
      int s = 0;
      if (rank == 0) {
        std::copy(local.shard(0) + begin + from, local.shard(0) + begin + to, out + from);
        s = 1;
      }
      for (; s < local_shards; ++s) {
        const float* g = local.shard(s) + begin;
        for (std::size_t i = from; i < to; ++i) out[i] += g[i];
      }
    });
    if (rank < last) {
      comm_.start_send(piece, rank + 1);
      bytes_sent_ += piece.size() * sizeof(float);
    }
  }
  const auto start = Clock::now();
  comm_.wait_all();
  comm_.broadcast(std::span<float>(total, parameter_count_), last);
  wait_seconds_ += seconds_since(start);
  if (rank == last) bytes_sent_ += parameter_count_ * sizeof(float);
  return total_;
}

}  // namespace shardprop::detail
