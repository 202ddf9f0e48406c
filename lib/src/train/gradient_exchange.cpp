// The ordered chain, bucket by bucket. Every receive is posted up front, so a rank takes in the
// next piece while it adds and passes on this one. Pieces shrink as ranks grow (about four per
// rank, 16 KiB to 1 MiB): the last rank waits for the first piece to cross every link before
// the pipeline is full, so smaller pieces start it sooner, and larger ones cost fewer messages.
#include "train/gradient_exchange.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <span>
#include <string>

#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

constexpr std::size_t kMinPieceFloats = std::size_t{4} * 1024;
constexpr std::size_t kMaxPieceFloats = std::size_t{256} * 1024;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

GradientExchange::GradientExchange(Communicator& comm, const std::vector<TensorInfo>& tensors,
                                   std::size_t parameter_count, bool overlap)
    : comm_(comm),
      parameter_count_(parameter_count),
      piece_floats_(std::clamp(parameter_count / (4 * static_cast<std::size_t>(comm.size())),
                               kMinPieceFloats, kMaxPieceFloats)),
      total_(1, parameter_count) {
  // A layer's trained tensors are contiguous ("L.weight", "L.bias"); running statistics have no
  // gradient.
  std::map<int, Bucket> layers;
  for (const TensorInfo& t : tensors) {
    if (!t.trained()) continue;
    const int layer = std::stoi(t.name.substr(0, t.name.find('.')));
    auto [it, fresh] = layers.try_emplace(layer, Bucket{layer, t.offset, t.offset + t.size});
    it->second.begin = std::min(it->second.begin, t.offset);
    it->second.end = std::max(it->second.end, t.offset + t.size);
  }
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) buckets_.push_back(it->second);
  bucket_of_layer_.assign(layers.empty() ? 0 : static_cast<std::size_t>(layers.rbegin()->first) + 1,
                          -1);
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    bucket_of_layer_[static_cast<std::size_t>(buckets_[b].layer)] = static_cast<int>(b);
  }
  pending_ = std::vector<std::atomic<int>>(buckets_.size());
  if (overlap && comm.concurrent_calls()) {
    thread_ = std::thread([this] { communication_thread(); });
  }
}

GradientExchange::~GradientExchange() {
  if (!thread_.joinable()) return;
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void GradientExchange::begin(const GradientBuffers& local, int local_shards) {
  local_ = &local;
  local_shards_ = local_shards;
  // Without overlap the chain runs after the backward pass: every bucket is ready then.
  for (std::atomic<int>& p : pending_) p.store(overlaps() ? local_shards : 0);
  if (!overlaps()) return;
  {
    const std::lock_guard lock(mutex_);
    step_started_ = true;
  }
  wake_.notify_all();
}

void GradientExchange::layer_done(int layer) {
  if (!overlaps() || layer >= static_cast<int>(bucket_of_layer_.size())) return;
  const int b = bucket_of_layer_[static_cast<std::size_t>(layer)];
  if (b < 0) return;
  if (pending_[static_cast<std::size_t>(b)].fetch_sub(1) == 1) {
    { const std::lock_guard lock(mutex_); }  // the waiter is either waiting or will see zero
    wake_.notify_all();
  }
}

void GradientExchange::wait_until_ready(std::size_t bucket) {
  if (pending_[bucket].load() <= 0) return;
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [&] { return pending_[bucket].load() <= 0 || stopping_; });
}

void GradientExchange::run_chain(const ForEachBlock& for_each_block, bool patient) {
  // The communication thread shares the cores with the backward pass: it sleeps between polls
  // instead of spinning in MPI_Wait.
  // A trainer destroyed in the middle of a step (its step threw) must not wait for pieces that
  // will never come.
  auto wait_for = [&](auto&& done) {
    while (!done()) {
      if (stopping_) throw Error("gradient exchange: the trainer stopped during a step");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  };
  const int rank = comm_.rank();
  const int last = comm_.size() - 1;
  float* total = total_.shard(0);
  // Calls f(piece) for every piece, bucket by bucket in chain order.
  auto for_each_piece = [&](auto&& f) {
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      for (std::size_t at = buckets_[b].begin; at < buckets_[b].end; at += piece_floats_) {
        f(b, std::span<float>(total + at, std::min(piece_floats_, buckets_[b].end - at)));
      }
    }
  };
  if (rank > 0) {
    for_each_piece(
        [&](std::size_t, std::span<float> piece) { comm_.start_receive(piece, rank - 1); });
  }
  int transfer = 0;
  std::size_t ready = buckets_.size();  // the bucket last waited for
  for_each_piece([&](std::size_t b, std::span<float> piece) {
    if (b != ready) {
      wait_until_ready(b);
      ready = b;
    }
    if (rank > 0) {
      const int t = transfer++;
      if (patient) {
        wait_for([&] { return comm_.test(t); });
      } else {
        comm_.wait(t);
      }
    }
    // Rank 0 always holds shard 0: the sum starts as its copy, as reduce_gradients' does. Each
    // element's sum runs over the shards in order, whichever thread adds it.
    const std::size_t offset = static_cast<std::size_t>(piece.data() - total);
    for_each_block(piece.size(), [&](std::size_t from, std::size_t to) {
      float* out = piece.data();
      int s = 0;
      if (rank == 0) {
        std::copy(local_->shard(0) + offset + from, local_->shard(0) + offset + to, out + from);
        s = 1;
      }
      for (; s < local_shards_; ++s) {
        const float* g = local_->shard(s) + offset;
        for (std::size_t i = from; i < to; ++i) out[i] += g[i];
      }
    });
    if (rank < last) {
      comm_.start_send(piece, rank + 1);
      bytes_sent_ += piece.size() * sizeof(float);
    }
  });
  if (patient) {
    wait_for([&] { return comm_.test_all(); });
  } else {
    comm_.wait_all();
  }
}

void GradientExchange::communication_thread() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return step_started_ || stopping_; });
      if (stopping_) return;
      step_started_ = false;
    }
    std::exception_ptr failure;
    try {
      // One thread adds here: the rank's worker threads are busy with the backward pass.
      run_chain(
          [](std::size_t n, const std::function<void(std::size_t, std::size_t)>& f) { f(0, n); },
          /*patient=*/true);
    } catch (...) {
      failure = std::current_exception();
    }
    {
      const std::lock_guard lock(mutex_);
      failure_ = failure;
      step_finished_ = true;
    }
    wake_.notify_all();
  }
}

const GradientBuffers& GradientExchange::finish(const ForEachBlock& for_each_block) {
  const auto start = Clock::now();
  if (overlaps()) {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [&] { return step_finished_; });
    step_finished_ = false;
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  } else {
    run_chain(for_each_block, /*patient=*/false);
  }
  const int last = comm_.size() - 1;
  comm_.broadcast(std::span<float>(total_.shard(0), parameter_count_), last);
  if (comm_.rank() == last) bytes_sent_ += parameter_count_ * sizeof(float);
  wait_seconds_ += seconds_since(start);
  return total_;
}

}  // namespace shardprop::detail
