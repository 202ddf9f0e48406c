// Data-parallel minibatch SGD: one step splits the minibatch into shards, runs each shard's
// forward and backward pass as a TBB task into a gradient buffer it owns, reduces the buffers
// in a fixed order and applies one update.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"

namespace shardprop {

struct TrainerSettings {
  // Worker threads. 0: run in the caller's current tbb::task_arena (the application decides).
  int threads = 0;
  // Shards per minibatch. 0: automatic, a function of the model and batch size only (never of
  // the thread count), so results do not change with threads. See docs/architecture.md.
  int shards = 0;
  int batch_size = 32;
  float learning_rate = 0.01f;
  float weight_decay = 0.0f;  // λ: ∂J/∂W += λW for weights, not biases
  std::uint64_t seed = 1;     // drives the per-epoch shuffle
  bool shuffle = true;        // false: minibatches are consecutive rows in dataset order
  // Streaming epochs shuffle through a buffer of this many bytes of rows (see train_epoch).
  std::size_t shuffle_buffer_bytes = std::size_t{64} << 20;
};

// Mean loss over the rows of a step or an epoch, and the matching quality measure.
struct Metrics {
  double loss = 0.0;      // data loss averaged over rows (weight decay term not included)
  double accuracy = 0.0;  // xent: argmax == class; bce: (logit > 0) == (target > 0.5), per output
  double rmse = 0.0;      // root mean squared error over all outputs (meaningful for mse)
  std::int64_t rows = 0;
};

// Thread safety: one thread drives a Trainer; it parallelises internally.
class Trainer {
 public:
  // Validates the settings against the model and sizes every workspace once; throws Error.
  // The model must outlive the trainer.
  Trainer(Model& model, const TrainerSettings& settings);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // One SGD step on a minibatch of 1..batch_size rows (at least 2 with batch norm).
  // features: [rows, inputs]; targets: [rows, target width] (class indices for xent). Returns
  // the minibatch's mean loss before the update. Batch-norm layers use the statistics of the
  // whole minibatch, however it is sharded, and update their running statistics. No allocation.
  double step(std::span<const float> features, std::span<const float> targets);

  // One pass over the dataset in minibatches (the last may be smaller), shuffled by
  // (seed, epoch) unless shuffle is off. With batch norm, a last minibatch of a single row is
  // skipped. Returns the mean of the step losses weighted by rows (Metrics::rows = rows used).
  Metrics train_epoch(const Dataset& data);

  // One pass over a stream too large for memory. With shuffle on, rows go through a buffer of
  // K = shuffle_buffer_bytes / row size rows: each incoming row replaces a uniformly drawn
  // buffered row, which joins the minibatch; the rest leave in random order at the end. A
  // pure function of (seed, epoch, row index), whatever the chunking.
  Metrics train_epoch(DataStream& stream);
  // evaluate() over a stream.
  Metrics evaluate(DataStream& stream) const;

  // Loss and accuracy/RMSE of the current model on a dataset, in inference mode (batch norm
  // uses its running statistics and does not change them).
  Metrics evaluate(const Dataset& data) const;

  int shard_count() const;
  int epochs_completed() const;
  const TrainerSettings& settings() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The shard count chosen when TrainerSettings::shards is 0.
int default_shard_count(const ModelSpec& spec, int batch_size);

}  // namespace shardprop
