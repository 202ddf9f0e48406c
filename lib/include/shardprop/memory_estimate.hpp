// What training needs in memory, from the settings alone (nothing allocated), and the check
// that refuses a run which would not fit before it starts instead of letting it be killed
// halfway. Leaves out the data readers' own buffers: callers add their data's bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"

namespace shardprop {

// Bytes, by what holds them. Within a few percent of what a Trainer and its Model allocate
// (tested against the peak resident memory of `shardprop train`), rounded up, never down.
struct MemoryEstimate {
  std::uint64_t parameters = 0;       // the model's floats (batch-norm running statistics included)
  std::uint64_t optimizer_state = 0;  // momentum / Adam's buffers, like the parameters
  std::uint64_t gradients = 0;        // one gradient buffer per shard this rank runs
  // One minibatch's activations, batch-norm and dropout buffers and backward deltas (over the
  // shards of this rank), the gathered minibatch, and evaluation's per-thread workspaces.
  std::uint64_t workspaces = 0;
  std::uint64_t best_weights = 0;  // early stopping's copy of the best epoch (training_run)
  // The caller's data held in memory (the caller sets it). check_memory counts it against a
  // cap, but not against the available memory, which it is already taken from.
  std::uint64_t data = 0;

  std::uint64_t total() const;
  // "1.21 GB (parameters 400 MB, optimizer state 800 MB, ...)": the parts that are not zero.
  std::string describe() const;
};

// The estimate for training `spec` with `settings` as rank 0 of `ranks` (the rank running the
// most shards). threads: the trainer's thread count (0: this arena's). `early_stopping`: a
// training run that keeps its best weights. data is 0. Throws Error for a spec Model refuses.
MemoryEstimate estimate_training_memory(const ModelSpec& spec, const TrainerSettings& settings,
                                        int ranks = 1, bool early_stopping = false);

// Memory a new allocation can get without swapping: MemAvailable of /proc/meminfo, or where
// that is missing the free physical pages (sysconf). 0 when neither is known.
std::uint64_t available_memory();

// The peak resident memory of this process image so far: VmHWM of /proc/self/status (which,
// unlike getrusage's ru_maxrss, does not carry over the size of the process that exec'd it).
// 0 when unknown.
std::uint64_t peak_resident_memory();

// Throws Error when estimate.total() exceeds `cap` (> 0; 0: no cap), or when all but its data
// exceeds the available memory (`available`, 0: unknown, not checked), saying how much is needed,
// of what, how much there is, and what makes it smaller (a smaller batch size, streaming the data).
void check_memory(const MemoryEstimate& estimate, std::uint64_t cap, std::uint64_t available);

// "8G", "512M", "64k", "1.5GB", "100000" (bytes): binary units (k = 1024), case-insensitive,
// an optional "B"/"iB". Throws Error naming the text on anything else or 0.
std::uint64_t parse_memory_size(std::string_view text);
// 1536 → "1.50 kB"... with binary units (kB, MB, GB, TB = 1024^k bytes).
std::string format_bytes(std::uint64_t bytes);

}  // namespace shardprop
