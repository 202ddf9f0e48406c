// A training run as `shardprop train` does it, for any caller: R restarts from different seeds
// of E epochs each, early stopping on the evaluation loss, periodic checkpoints (named,
// pruned), the best restart kept in the output file, and resuming all of it from a checkpoint
// so that the result is bitwise the one of an uninterrupted run. The caller supplies the data
// as two functions and is told of progress through callbacks; nothing here prints.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "shardprop/communicator.hpp"
#include "shardprop/memory_estimate.hpp"
#include "shardprop/model.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/trained_model.hpp"
#include "shardprop/trainer.hpp"

namespace shardprop {

// The seed of restart r: the run's seed itself for restart 0 (so one restart is the plain
// run), a counter-based hash of (seed, r) otherwise.
std::uint64_t restart_seed(std::uint64_t seed, int restart);

// Periodic checkpoints: DIRECTORY/STEM[.rRRR].epoch-EEEEEE[.step-SSSSSSSSSS].safetensors (the
// restart part only when a run has several; the step part only for a checkpoint taken S steps
// into the epoch after E), so names sort by age within a run. Not thread-safe.
class PeriodicCheckpoints {
 public:
  // keep >= 1: how many of the newest prune() leaves.
  PeriodicCheckpoints(std::filesystem::path directory, std::string stem, bool several_restarts,
                      int keep);
  // The directory of `out` (or `directory` when given) and out's name without its extension
  // ("checkpoint" when out is empty).
  static PeriodicCheckpoints next_to(const std::filesystem::path& out,
                                     const std::filesystem::path& directory, bool several_restarts,
                                     int keep);

  std::filesystem::path path(int restart, int epoch, std::int64_t step = 0) const;
  // Creates the directory if needed (errors surface when a checkpoint is written).
  void prepare() const;
  // Removes all but the newest `keep` files whose names this scheme makes for this stem, and the
  // hidden temporary files of such names whose writing process is gone (a write killed midway;
  // see docs/reliability.md). Other files, and temporary files of live writers, are never
  // touched. Best effort: a directory that cannot be listed keeps its files.
  void prune() const;

 private:
  std::filesystem::path directory_;
  std::string stem_;
  bool several_restarts_;
  int keep_;
};

struct RunSettings {
  ModelSpec spec;
  // The trainer's settings; trainer.seed is the run's seed (restart r uses restart_seed).
  TrainerSettings trainer;
  int epochs = 10;  // per restart, in total (a resumed run trains up to this)
  // >= 1; the restart with the lowest loss is kept: its final loss, or with early stopping its
  // best epoch's.
  int restarts = 1;
  // Stop a restart after this many epochs without a lower loss; 0: off. On, the result holds
  // the weights of the epoch with the lowest loss (batch-norm running statistics included), as
  // Keras' restore_best_weights does; see `out`.
  int early_stopping = 0;
  std::filesystem::path init;  // start from these weights instead of random ones ("" none)
  // The result: a complete checkpoint, written when the run ends (with several restarts, also
  // whenever a restart beats the best so far). "" writes none. With early stopping its weights
  // are the best epoch's; when that was not the last epoch, it also holds the latest weights
  // (tensors "latest.NAME", which the optimizer state belongs to) so that a resumed run
  // continues from them; periodic checkpoints hold the latest weights, and the best ones as
  // "best.NAME". See docs/checkpoint-format.md.
  std::filesystem::path out;
  int checkpoint_every = 0;  // also a periodic checkpoint every N epochs (0: none)
  // Also a periodic checkpoint once this many steps (counted over the restart), or seconds,
  // have passed since the last one (0: none), at the next step boundary, inside an epoch or
  // at its end. The time is rank 0's clock: with several ranks, deciding it costs a small
  // collective per step.
  std::int64_t checkpoint_every_steps = 0;
  double checkpoint_every_seconds = 0.0;
  std::filesystem::path checkpoint_dir;  // "" : next to out
  int keep = 3;                          // periodic checkpoints kept, the newest
  // Before anything is allocated, train_run refuses (Error) a run whose estimated memory
  // (estimate_training_memory, memory_estimate.hpp, plus data_bytes) exceeds max_memory
  // (0: no cap) or the memory available on any rank.
  std::uint64_t max_memory = 0;
  std::uint64_t data_bytes = 0;  // the caller's data held in memory on this rank
  // The ranks the run trains on (default: this process alone). Every rank calls train_run with
  // the same settings; rank 0 alone writes files, and a failed write fails the run on every
  // rank (CollectiveError). The RunData functions are called on every rank and must be
  // collective themselves (Trainer::train_epoch and evaluate of a DatasetPart are).
  Communicator communicator;
  // A request to stop (see StopFlag; nullptr: none), read after every step and before every
  // epoch. When any rank reads a non-zero value the ranks stop together at a step boundary: the
  // run writes a complete checkpoint there (to `out` for a run of one restart, else to the
  // periodic checkpoint path, which without out is ./checkpoint.epoch-...), tells
  // RunObserver::stopped and returns a RunState whose stop_request is the value. Resuming that
  // checkpoint gives the weights of an uninterrupted run, bitwise.
  const StopFlag* stop = nullptr;
};

// Where a run stopped on request (RunSettings::stop).
struct RunStop {
  int request = 0;                   // the value the ranks agreed on (a signal number, say)
  int restart = 0;                   // 0-based
  int epochs = 0;                    // epochs of the restart completed
  std::int64_t step = 0;             // steps done of the next epoch (0: stopped between epochs)
  std::filesystem::path checkpoint;  // the checkpoint written, to resume from
};

// One finished epoch. `evaluation` is what RunData::evaluate returned (without it, `train`):
// early stopping and the choice of restart compare its loss.
struct EpochResult {
  int restart = 0;
  int epoch = 0;  // 1-based, counted over the restart
  double learning_rate = 0.0;
  Metrics train;
  Metrics evaluation;
  bool improved = false;  // a lower evaluation loss than every earlier epoch of this restart
  double train_seconds = 0.0;
  // The rows trained in train_seconds: train.rows, less the rows done before the run was
  // resumed from a checkpoint taken inside this epoch.
  std::int64_t rows_trained = 0;
  double gradient_norm = 0.0;
};

// What the run tells its caller, in order; every function may be empty.
struct RunObserver {
  // A restart's model and trainer exist (settings validated) and training is about to start.
  // `resumed`: it continues the checkpoint's weights at trainer.epochs_completed().
  std::function<void(int restart, const Trainer& trainer, bool resumed)> restart_started;
  std::function<void(const EpochResult&)> epoch_finished;
  std::function<void(const std::filesystem::path&)> checkpoint_written;  // periodic ones
  // Early stopping ended the restart after `epoch`.
  std::function<void(int epoch, const RunState&)> stopped_early;
  // With several restarts: restart `restart` finished with `loss`; `best`: lowest so far.
  std::function<void(int restart, double loss, bool best)> restart_finished;
  // The result was written to RunSettings::out; `chosen_restart` >= 0 when the run chose the
  // best of several restarts (-1 otherwise).
  std::function<void(const std::filesystem::path&, int chosen_restart)> result_written;
  // The run stopped on request and wrote a checkpoint (the last call).
  std::function<void(const RunStop&)> stopped;
};

// The data, as the caller reads it (in memory, streamed, one rank's part...).
struct RunData {
  // One epoch of training (Trainer::train_epoch); its errors propagate.
  std::function<Metrics(Trainer&)> train_epoch;
  // The loss early stopping and the choice of restart compare (validation data if any). Empty:
  // the epoch's running metrics (Trainer::train_epoch's) stand in, at no extra pass.
  std::function<Metrics(const Trainer&)> evaluate;
};

namespace detail {
class SafetensorsFile;
struct RunCheckpointAccess;
}  // namespace detail

// A checkpoint of a run, read, checksummed and validated once: the weights and what they were
// trained on (TrainedModel) and the run's metadata. train_run resumes from it without reading
// the file again.
class RunCheckpoint {
 public:
  // Throws Error naming the file and the problem (see load_trained_model and
  // read_run_metadata).
  explicit RunCheckpoint(const std::filesystem::path& path);
  ~RunCheckpoint();
  RunCheckpoint(RunCheckpoint&&) noexcept;
  RunCheckpoint& operator=(RunCheckpoint&&) noexcept;

  const std::filesystem::path& path() const { return path_; }
  const TrainedModel& trained() const { return trained_; }
  const RunMetadata& metadata() const { return metadata_; }

 private:
  friend struct detail::RunCheckpointAccess;
  std::filesystem::path path_;
  std::unique_ptr<const detail::SafetensorsFile> file_;
  TrainedModel trained_;
  RunMetadata metadata_;
};

// A failed write of any file (a full disk, an I/O error, a read-only directory) stops the run
// with an Error naming the file and the OS error: the file it would have replaced, and every
// file written before, stay as they were, and no temporary file is left.
//
// Runs (or, with `resume`, continues) a training run. `metadata` describes the data and the
// caller's settings; its seed, epochs and run state are filled in for every file written.
// A resumed run takes its state from the checkpoint, whose model must be settings.spec and
// whose optimizer that of settings.trainer; it consumes the checkpoint (takes its model, frees
// the file's bytes), so a RunCheckpoint resumes one train_run. Returns the final run state. Throws
// Error.
RunState train_run(const RunSettings& settings, RunMetadata metadata, const RunData& data,
                   const RunObserver& observer = {}, RunCheckpoint* resume = nullptr);

// save_checkpoint with run_metadata_entries(metadata) for a run's trainer: metadata.epochs and
// metadata.position are taken from the trainer (so it may be called inside an epoch, from
// Trainer::set_step_callback).
void save_run_checkpoint(const Model& model, const Trainer& trainer,
                         const std::filesystem::path& path, RunMetadata metadata);

}  // namespace shardprop
