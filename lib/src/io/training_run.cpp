// train_run: restarts, early stopping, periodic checkpoints and resuming, as named steps over
// the public Trainer and the checkpoint files. Nothing here prints; the observer is told.
#include "shardprop/training_run.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <regex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "base/agreement.hpp"
#include "base/atomic_file.hpp"
#include "base/rng.hpp"
#include "io/safetensors_file.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "train/trainer_access.hpp"

namespace shardprop {

namespace fs = std::filesystem;

std::uint64_t restart_seed(std::uint64_t seed, int restart) {
  if (restart == 0) return seed;
  return detail::mix64(seed + 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(restart));
}

// ---- Periodic checkpoints ------------------------------------------------------------------

PeriodicCheckpoints::PeriodicCheckpoints(fs::path directory, std::string stem,
                                         bool several_restarts, int keep)
    : directory_(std::move(directory)),
      stem_(std::move(stem)),
      several_restarts_(several_restarts),
      keep_(keep) {
  if (directory_.empty()) directory_ = ".";
  if (keep_ < 1)
    throw Error("periodic checkpoints: keep must be >= 1, got " + std::to_string(keep));
}

PeriodicCheckpoints PeriodicCheckpoints::next_to(const fs::path& out, const fs::path& directory,
                                                 bool several_restarts, int keep) {
  const fs::path named = out.empty() ? fs::path("checkpoint") : out;
  return {directory.empty() ? named.parent_path() : directory, named.stem().string(),
          several_restarts, keep};
}

fs::path PeriodicCheckpoints::path(int restart, int epoch, std::int64_t step) const {
  char name[96];
  int at = 0;
  if (several_restarts_) at = std::snprintf(name, sizeof name, ".r%03d", restart);
  at += std::snprintf(name + at, sizeof name - at, ".epoch-%06d", epoch);
  if (step > 0) {
    at += std::snprintf(name + at, sizeof name - at, ".step-%010lld", static_cast<long long>(step));
  }
  std::snprintf(name + at, sizeof name - at, ".safetensors");
  return directory_ / (stem_ + name);
}

void PeriodicCheckpoints::prepare() const {
  std::error_code ignored;
  fs::create_directories(directory_, ignored);
}

void PeriodicCheckpoints::prune() const {
  // Names sort by age. A hidden temporary file (".STEM....tmp.PID@HOST.XXXXXX") never starts
  // with STEM; those of this scheme's names whose writer is gone (killed mid-write) go too.
  const std::regex pattern(R"((\.r\d{3})?\.epoch-\d{6}(\.step-\d{10})?\.safetensors)");
  const auto is_ours = [&](std::string_view name) {
    return name.size() > stem_.size() && name.substr(0, stem_.size()) == stem_ &&
           std::regex_match(name.begin() + static_cast<std::ptrdiff_t>(stem_.size()), name.end(),
                            pattern);
  };
  std::vector<fs::path> ours;
  std::error_code error;
  for (fs::directory_iterator it(directory_, error); !error && it != fs::directory_iterator();
       it.increment(error)) {
    if (is_ours(it->path().filename().string())) ours.push_back(it->path());
  }
  std::sort(ours.begin(), ours.end());
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep_) < ours.size(); ++i) {
    fs::remove(ours[i], error);
  }
  detail::remove_stale_temporaries(directory_, is_ours);
}

// ---- Checkpoints of a run ------------------------------------------------------------------

// What train_run takes from a RunCheckpoint beyond its public view: the model to move out and
// the file read once.
struct detail::RunCheckpointAccess {
  static Model& model(RunCheckpoint& checkpoint) { return checkpoint.trained_.model; }
  static const SafetensorsFile& file(const RunCheckpoint& checkpoint) { return *checkpoint.file_; }
  // The file's bytes are needed only until the trainer is restored; a large model should not
  // hold them for the whole run.
  static void release_file(RunCheckpoint& checkpoint) { checkpoint.file_.reset(); }
};

RunCheckpoint::RunCheckpoint(const fs::path& path)
    : path_(path),
      file_(std::make_unique<const detail::SafetensorsFile>(detail::SafetensorsFile::read(path))),
      trained_(detail::load_trained_model(*file_)),
      metadata_(read_run_metadata(trained_, path.string())) {}

RunCheckpoint::~RunCheckpoint() = default;
RunCheckpoint::RunCheckpoint(RunCheckpoint&&) noexcept = default;
RunCheckpoint& RunCheckpoint::operator=(RunCheckpoint&&) noexcept = default;

void save_run_checkpoint(const Model& model, const Trainer& trainer, const fs::path& path,
                         RunMetadata metadata) {
  metadata.epochs = trainer.epochs_completed();
  metadata.position = trainer.epoch_position();
  save_checkpoint(model, trainer, path, run_metadata_entries(metadata));
}

// ---- The run -------------------------------------------------------------------------------

namespace {

void check_settings(const RunSettings& s, const RunData& data) {
  if (s.restarts < 1) throw Error("a run needs restarts >= 1, got " + std::to_string(s.restarts));
  if (s.epochs < 0) throw Error("a run needs epochs >= 0, got " + std::to_string(s.epochs));
  if (s.restarts > 1 && !s.init.empty()) {
    throw Error("several restarts draw new initial weights; they cannot start from " +
                s.init.string());
  }
  if (!data.train_epoch) {
    throw Error("a run needs RunData::train_epoch");
  }
}

// Refuses a run that would not fit in memory, on every rank if it does not fit on one, before
// the model is allocated. Collective.
void check_run_memory(const RunSettings& s) {
  detail::Communicator& comm = detail::CommunicatorAccess::of(s.communicator);
  detail::agree(comm, [&] {
    MemoryEstimate estimate =
        estimate_training_memory(s.spec, s.trainer, comm.size(), s.early_stopping > 0);
    estimate.data = s.data_bytes;
    check_memory(estimate, s.max_memory, available_memory());
  });
}

template <class Function, class... Args>
void tell(const Function& f, Args&&... args) {
  if (f) f(std::forward<Args>(args)...);
}

constexpr const char* kBestPrefix = "best.";
constexpr const char* kLatestPrefix = "latest.";

// A copy of a model's float tensors and counters (batch-norm running statistics included).
struct WeightsCopy {
  std::vector<float> parameters;
  std::vector<std::int64_t> counters;
  bool held = false;

  void resize(const Model& model) {
    parameters.assign(model.parameters().size(), 0.0f);
    counters.assign(model.counters().size(), 0);
  }
  void take(const Model& model) {
    parameters.assign(model.parameters().begin(), model.parameters().end());
    counters.assign(model.counters().begin(), model.counters().end());
    held = true;
  }
  void clear() {
    parameters = {};
    counters = {};
    held = false;
  }
};

// One run's state and the steps it goes through; train_run reads as their sequence.
class Run {
 public:
  Run(const RunSettings& settings, RunMetadata metadata, const RunData& data,
      const RunObserver& observer, RunCheckpoint* resume)
      : settings_(settings),
        metadata_(std::move(metadata)),
        data_(data),
        observer_(observer),
        resume_(resume),
        several_(settings.restarts > 1),
        periodic_(PeriodicCheckpoints::next_to(settings.out, settings.checkpoint_dir, several_,
                                               settings.keep)) {
    if (resume_ != nullptr) state_ = resume_->metadata().run;
  }

  // The restarts still to train: all of them, or only the chosen one of a finished run (to
  // train it to more epochs).
  int first_restart() const { return state_.restarts_done ? state_.best_restart : state_.restart; }
  int last_restart() const {
    return state_.restarts_done ? state_.best_restart : settings_.restarts - 1;
  }

  // Trains restart r to the end. Returns false once the run is complete (one restart, or the
  // chosen one of a finished run), true when further restarts follow.
  bool train_restart(int r) {
    const bool resumed = resume_ != nullptr && r == first_restart() && state_.weights_restart == r;
    TrainerSettings trainer_settings = settings_.trainer;
    trainer_settings.seed = restart_seed(settings_.trainer.seed, r);
    Model model = resumed ? resumed_model() : initial_model(trainer_settings.seed);
    if (resumed) restore_weight_copies(model);
    Trainer trainer(model, trainer_settings, settings_.communicator);
    if (resumed) {
      restore_trainer(trainer, model);
    } else {
      start_restart(r);
    }
    if (resume_ != nullptr) detail::RunCheckpointAccess::release_file(*resume_);
    tell(observer_.restart_started, r, trainer, resumed);
    trainer.set_stop_flag(settings_.stop);
    last_periodic_steps_ = trainer.steps_completed();
    last_periodic_time_ = Clock::now();
    trainer.set_step_callback([&] {
      if (periodic_due(trainer)) write_periodic(r, model, trainer);
    });

    double final_loss = std::numeric_limits<double>::infinity();
    for (int epoch = trainer.epochs_completed() + 1; epoch <= settings_.epochs; ++epoch) {
      if (stopped_early()) break;
      // Asked between epochs (or during the last one's evaluation): stop at this boundary.
      if (const int request = agreed_stop_request(); request != 0) {
        stop(r, request, model, trainer);
        return false;
      }
      final_loss = train_epoch(r, epoch, model, trainer);
      // Asked inside the epoch: it stopped at a step boundary.
      if (trainer.epoch_position().step > 0) {
        stop(r, trainer.stop_request(), model, trainer);
        return false;
      }
    }
    if (stopped_early()) tell(observer_.stopped_early, trainer.epochs_completed(), state_);
    // Nothing trained this time (resumed at the end, or epochs 0): score the model as it is.
    if (!std::isfinite(final_loss)) {
      final_loss = data_.evaluate ? data_.evaluate(trainer).loss : state_.best_loss;
    }
    // With early stopping the restart's result is its best epoch, and so is its score.
    if (keeps_best() && best_.held) final_loss = state_.best_loss;

    if (!several_ || state_.restarts_done) {
      if (!settings_.out.empty()) {
        save(model, trainer, settings_.out, state_, r);
        tell(observer_.result_written, settings_.out, -1);
      }
      return false;
    }
    finish_restart(r, final_loss, model, trainer);
    return true;
  }

  // With several restarts: marks the chosen restart's file as the run's result.
  void keep_best_restart() {
    if (!several_ || state_.restarts_done) return;
    state_.restarts_done = true;
    state_.restart = state_.best_restart;
    if (settings_.out.empty()) return;
    // Rank 0 rewrites the file it wrote; the others only learn whether that worked.
    on_rank_zero([&] {
      const detail::SafetensorsFile file = detail::SafetensorsFile::read(settings_.out);
      Model best = detail::load_model(file);
      TrainerSettings trainer_settings = settings_.trainer;
      trainer_settings.seed = restart_seed(settings_.trainer.seed, state_.best_restart);
      Trainer trainer(best, trainer_settings);
      detail::load_training_state(trainer, best, file);
      // The file's weights keep their roles: the result, and its latest weights if it has them.
      WeightsCopy latest;
      latest.resize(best);
      std::vector<detail::CheckpointWeights> weights{{"", best.parameters(), best.counters()}};
      if (detail::load_weights_copy(best, file, kLatestPrefix, latest.parameters,
                                    latest.counters)) {
        weights.push_back({kLatestPrefix, latest.parameters, latest.counters});
      }
      // Early stopping's fields are those of the chosen restart, which its file recorded.
      const RunState recorded =
          read_run_metadata(detail::load_trained_model(file), file.name()).run;
      RunState state = state_;
      state.best_loss = recorded.best_loss;
      state.best_epoch = recorded.best_epoch;
      state.bad_epochs = recorded.bad_epochs;
      write(best, weights, trainer, settings_.out, state, state_.best_restart);
    });
    tell(observer_.result_written, settings_.out, state_.best_restart);
  }

  const RunState& state() const { return state_; }
  bool stopped() const { return state_.stop_request != 0; }

 private:
  using Clock = std::chrono::steady_clock;

  // The largest stop request any rank holds now. Collective.
  int agreed_stop_request() const {
    const int mine = settings_.stop != nullptr ? settings_.stop->load() : 0;
    detail::Communicator& comm = detail::CommunicatorAccess::of(settings_.communicator);
    if (comm.size() == 1) return mine;
    const std::vector<int> all = comm.allgather(mine);
    return *std::max_element(all.begin(), all.end());
  }

  // Writes the checkpoint a stop on request leaves and tells the observer. Collective.
  void stop(int r, int request, const Model& model, const Trainer& trainer) {
    RunStop stop;
    stop.request = request != 0 ? request : 1;
    stop.restart = r;
    stop.epochs = trainer.epochs_completed();
    stop.step = trainer.epoch_position().step;
    // --out holds the result of a run of one restart, so it may hold the stopped one; with
    // several it holds the best finished restart, which must stay.
    stop.checkpoint = several_ || settings_.out.empty() ? periodic_.path(r, stop.epochs, stop.step)
                                                        : settings_.out;
    on_rank_zero([&] {
      periodic_.prepare();
      write(model, run_weights(model, trainer, state_, stop.checkpoint == settings_.out), trainer,
            stop.checkpoint, state_, r);
    });
    state_.stop_request = stop.request;
    tell(observer_.stopped, stop);
  }

  // Whether a checkpoint every N steps or seconds is due. Collective when it asks rank 0's clock.
  bool periodic_due(const Trainer& trainer) {
    if (settings_.checkpoint_every_steps > 0 &&
        trainer.steps_completed() - last_periodic_steps_ >= settings_.checkpoint_every_steps) {
      return true;
    }
    if (settings_.checkpoint_every_seconds <= 0.0) return false;
    const double elapsed =
        std::chrono::duration<double>(Clock::now() - last_periodic_time_).count();
    const int due = elapsed >= settings_.checkpoint_every_seconds ? 1 : 0;
    detail::Communicator& comm = detail::CommunicatorAccess::of(settings_.communicator);
    return comm.size() == 1 ? due != 0 : comm.allgather(due).front() != 0;
  }

  // A periodic checkpoint of where the restart stands (inside an epoch or at its end). Collective.
  void write_periodic(int r, const Model& model, const Trainer& trainer) {
    const fs::path file =
        periodic_.path(r, trainer.epochs_completed(), trainer.epoch_position().step);
    on_rank_zero([&] {
      periodic_.prepare();
      write(model, run_weights(model, trainer, state_, false), trainer, file, state_, r);
      periodic_.prune();
    });
    newest_periodic_ = file;
    last_periodic_steps_ = trainer.steps_completed();
    last_periodic_time_ = Clock::now();
    tell(observer_.checkpoint_written, file);
  }

  Model resumed_model() {
    Model& model = detail::RunCheckpointAccess::model(*resume_);
    const std::string held = format_layers(model.spec().layers);
    const std::string wanted = format_layers(settings_.spec.layers);
    if (held != wanted || model.spec().inputs != settings_.spec.inputs ||
        model.spec().loss != settings_.spec.loss) {
      throw Error(resume_->path().string() + ": holds the model " + held +
                  ", the settings describe " + wanted);
    }
    return std::move(model);
  }

  Model initial_model(std::uint64_t seed) const {
    Model model(settings_.spec);
    if (settings_.init.empty()) {
      model.initialize(seed);
    } else {
      load_safetensors(model, settings_.init);
    }
    return model;
  }

  void restore_trainer(Trainer& trainer, const Model& model) const {
    const TrainingProgress progress =
        detail::load_training_state(trainer, model, detail::RunCheckpointAccess::file(*resume_));
    if (progress.epochs != resume_->metadata().epochs) {
      throw Error(resume_->path().string() + ": metadata 'shardprop.epochs' says " +
                  std::to_string(resume_->metadata().epochs) + " epochs, 'shardprop.state' " +
                  std::to_string(progress.epochs));
    }
    detail::TrainerAccess::set_epoch_position(trainer, resume_->metadata().position);
  }

  // A resumed restart's second copy of the weights, when early stopping keeps the best ones: a
  // result file holds the best as its weights and the latest (which the optimizer state and
  // training continue from) as "latest.*"; a periodic checkpoint the other way round, with
  // "best.*"; a file whose best epoch is its last holds one copy.
  void restore_weight_copies(Model& model) {
    best_.clear();
    if (!keeps_best()) return;
    const detail::SafetensorsFile& file = detail::RunCheckpointAccess::file(*resume_);
    WeightsCopy other;
    other.resize(model);
    if (detail::load_weights_copy(model, file, kLatestPrefix, other.parameters, other.counters)) {
      best_.take(model);
      std::copy(other.parameters.begin(), other.parameters.end(), model.parameters().begin());
      std::copy(other.counters.begin(), other.counters.end(), model.counters().begin());
    } else if (detail::load_weights_copy(model, file, kBestPrefix, other.parameters,
                                         other.counters)) {
      best_ = std::move(other);
      best_.held = true;
    } else if (state_.best_epoch > 0 && state_.best_epoch == resume_->metadata().epochs &&
               resume_->metadata().position.step == 0) {
      best_.take(model);
    }
  }

  bool keeps_best() const { return settings_.early_stopping > 0; }

  void start_restart(int r) {
    best_.clear();
    state_.restart = r;
    state_.best_loss = std::numeric_limits<double>::infinity();
    state_.best_epoch = 0;
    state_.bad_epochs = 0;
  }

  bool stopped_early() const {
    return settings_.early_stopping > 0 && state_.bad_epochs >= settings_.early_stopping;
  }

  // One epoch: train, evaluate, early stopping's bookkeeping, a periodic checkpoint when due.
  // Returns the evaluation loss.
  double train_epoch(int r, int epoch, const Model& model, Trainer& trainer) {
    EpochResult result;
    result.restart = r;
    result.epoch = epoch;
    result.learning_rate = trainer.learning_rate();
    const std::int64_t rows_before = trainer.epoch_position().rows;
    const auto start = std::chrono::steady_clock::now();
    result.train = data_.train_epoch(trainer);
    result.rows_trained = result.train.rows - rows_before;
    if (trainer.epoch_position().step > 0) return result.train.loss;  // stopped inside
    result.train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.evaluation = data_.evaluate ? data_.evaluate(trainer) : result.train;
    result.gradient_norm = trainer.last_gradient_norm();
    result.improved = result.evaluation.loss < state_.best_loss;
    if (result.improved) {
      state_.best_loss = result.evaluation.loss;
      state_.best_epoch = epoch;
      state_.bad_epochs = 0;
      if (keeps_best()) best_.take(model);
    } else {
      ++state_.bad_epochs;
    }
    tell(observer_.epoch_finished, result);
    const int every = settings_.checkpoint_every;
    if (epoch < settings_.epochs && ((every > 0 && epoch % every == 0) || periodic_due(trainer))) {
      write_periodic(r, model, trainer);
    }
    return result.evaluation.loss;
  }

  // Several restarts: --out always holds the best finished restart, a complete checkpoint.
  void finish_restart(int r, double loss, const Model& model, const Trainer& trainer) {
    const bool best = loss < state_.best_restart_loss;
    if (best) {
      state_.best_restart = r;
      state_.best_restart_loss = loss;
    }
    tell(observer_.restart_finished, r, loss, best);
    state_.restart = r + 1;  // a resume from --out goes on with the next restart
    if (best && !settings_.out.empty()) save(model, trainer, settings_.out, state_, r);
  }

  // f on rank 0 only; every rank throws if it failed there. Collective.
  template <class F>
  void on_rank_zero(F&& f) {
    detail::Communicator& comm = detail::CommunicatorAccess::of(settings_.communicator);
    detail::agree(comm, [&] {
      if (comm.rank() == 0) f();
    });
  }

  // The run's result, written by rank 0. Collective.
  void save(const Model& model, const Trainer& trainer, const fs::path& path, RunState state,
            int weights_restart) {
    on_rank_zero([&] {
      write(model, run_weights(model, trainer, state, true), trainer, path, state, weights_restart);
    });
  }

  // What a file of the run holds: the model's latest weights, or with early stopping and a best
  // epoch before the last, both copies: the result's weights are the best (Keras'
  // restore_best_weights) with the latest as "latest.*", a periodic checkpoint's the latest
  // with the best as "best.*".
  std::vector<detail::CheckpointWeights> run_weights(const Model& model, const Trainer& trainer,
                                                     const RunState& state, bool result) const {
    const detail::CheckpointWeights latest{"", model.parameters(), model.counters()};
    // Inside an epoch the latest weights have moved on from every finished epoch's.
    if (!best_.held ||
        (state.best_epoch == trainer.epochs_completed() && trainer.epoch_position().step == 0)) {
      return {latest};
    }
    const detail::CheckpointWeights best{"", best_.parameters, best_.counters};
    if (result) return {best, {kLatestPrefix, latest.parameters, latest.counters}};
    return {latest, {kBestPrefix, best.parameters, best.counters}};
  }

  // A failed write (a full disk, an I/O error, a read-only directory) stops the run: the
  // file it would have replaced and every file written before stay as they were.
  void write(const Model& model, std::span<const detail::CheckpointWeights> weights,
             const Trainer& trainer, const fs::path& path, RunState state, int weights_restart) {
    state.weights_restart = weights_restart;
    metadata_.run = state;
    metadata_.seed = restart_seed(settings_.trainer.seed, weights_restart);
    metadata_.epochs = trainer.epochs_completed();
    metadata_.position = trainer.epoch_position();
    try {
      detail::save_checkpoint(model, weights, trainer, path, run_metadata_entries(metadata_));
    } catch (const Error& e) {
      std::string where =
          "training stopped after epoch " + std::to_string(trainer.epochs_completed());
      if (const std::int64_t step = trainer.epoch_position().step; step > 0)
        where += " step " + std::to_string(step);
      where += "; files written before are unchanged";
      if (!newest_periodic_.empty())
        where += ", the newest checkpoint is " + newest_periodic_.string();
      throw Error(std::string(e.what()) + " (" + where + ")");
    }
  }

  const RunSettings& settings_;
  RunMetadata metadata_;
  const RunData& data_;
  const RunObserver& observer_;
  RunCheckpoint* resume_;
  bool several_;
  PeriodicCheckpoints periodic_;
  RunState state_;
  // When the last periodic checkpoint was written (or the restart began).
  std::int64_t last_periodic_steps_ = 0;
  Clock::time_point last_periodic_time_;
  WeightsCopy best_;  // with early stopping: the current restart's best epoch, once it has one
  fs::path newest_periodic_;
};

}  // namespace

RunState train_run(const RunSettings& settings, RunMetadata metadata, const RunData& data,
                   const RunObserver& observer, RunCheckpoint* resume) {
  check_settings(settings, data);
  check_run_memory(settings);
  Run run(settings, std::move(metadata), data, observer, resume);
  for (int r = run.first_restart(); r <= run.last_restart(); ++r) {
    if (!run.train_restart(r) || run.stopped()) return run.state();
  }
  run.keep_best_restart();
  return run.state();
}

}  // namespace shardprop
