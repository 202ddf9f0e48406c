// `shardprop train`. No mathematics and no file format here: the options become the library's
// RunSettings and RunMetadata, the data two functions, and train_run (training_run.hpp) does
// the restarts, early stopping, checkpoints and resuming; this file prints what it is told.
#include "train_command.hpp"
#include "command_arena.hpp"

#include <sched.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "metrics_log.hpp"
#include "progress.hpp"
#include "shardprop/communicator.hpp"
#include "shardprop/error.hpp"
#include "shardprop/memory_estimate.hpp"
#include "shardprop/model.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/trained_model.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/training_run.hpp"
#include "shardprop/version.hpp"
#include "stdin_spool.hpp"
#include "stop_signals.hpp"
#include "train_data.hpp"
#include "usage_error.hpp"

namespace shardprop::cli {
namespace {

namespace fs = std::filesystem;

// The data files as absolute paths, so that a resume started in another directory finds them
// (the name as given is recorded too, for display).
std::string absolute_path(const std::string& file) {
  if (file.empty() || file == "-") return file;  // "-": standard input
  std::error_code error;
  const fs::path path = fs::absolute(file, error);
  return error ? file : path.lexically_normal().string();
}

// A recorded data file that is gone: say which and how to point the run at it.
void require_recorded_file(const std::string& file, const char* option, const TrainOptions& o) {
  if (file == "-") {
    throw Error(o.resume +
                " was trained on standard input (--data -), which a checkpoint cannot "
                "read again: give the data with " +
                option + " FILE, or " + option + " - with the data piped in again");
  }
  std::error_code error;
  if (file.empty() || fs::is_regular_file(file, error)) return;
  throw Error(o.resume + " was trained on " + file + ", which is not there (moved or deleted?); " +
              "give the file with " + option + " FILE");
}

void check_spec_text(const TrainOptions& o, const CLI::App& command) {
  if (command.count("--spec") > 0 && o.spec.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw UsageError(
        "--spec is empty: give the layer stack, e.g. --spec \"dense(64) relu dense(10)\", or "
        "leave it out to use --layers");
  }
}

// --resume: the checkpoint, read once, and the options it records (the command line may change
// only --epochs, the data files and output options). The recorded absolute data paths are used
// unless --data / --val name others; files written before they were recorded keep the paths
// of their options.
std::optional<RunCheckpoint> open_resumed_run(TrainOptions& o, const CLI::App& command) {
  if (o.resume.empty()) return std::nullopt;
  if (o.out.empty()) o.out = o.resume;  // continues in the file it resumed, replaced atomically
  RunCheckpoint checkpoint(o.resume);
  const RunMetadata& m = checkpoint.metadata();
  apply_stored_options(o, nlohmann::json::parse(m.settings), command, o.resume);
  if (m.has_data_paths) {
    if (command.count("--data") == 0) o.data = m.data_path;
    if (command.count("--val") == 0) o.validation = m.validation_path;
  }
  if (command.count("--data") == 0) require_recorded_file(o.data, "--data", o);
  if (command.count("--val") == 0) require_recorded_file(o.validation, "--val", o);
  return checkpoint;
}

// What a resumed run reuses rather than refits: the label order, the categories, the
// imputation and the standardization.
StoredDataState stored_data_state(const std::optional<RunCheckpoint>& resumed) {
  StoredDataState stored;
  if (!resumed) return stored;
  stored.class_names = resumed->trained().class_names;
  stored.imputation = resumed->trained().imputation;
  stored.categorical = resumed->trained().categorical;
  if (!resumed->trained().standardization.empty()) {
    stored.standardization = resumed->trained().standardization;
  }
  return stored;
}

int output_count(const TrainOptions& o, const Dataset& shape, Loss loss) {
  if (loss != Loss::xent) return shape.target_width;
  if (shape.class_count() < 2) {
    throw Error(o.data + ": the target has a single class ('" + shape.class_names.front() +
                "'); xent needs at least 2");
  }
  return shape.class_count();
}

ModelSpec build_spec(const TrainOptions& o, int inputs, int outputs, Loss loss) {
  if (o.spec.empty()) {
    // An empty --layers item parses as 0 (a written 0 is refused): `--layers ''` is no hidden
    // layer.
    std::vector<int> widths = o.layers;
    std::erase(widths, 0);
    return ModelSpec::mlp(inputs, widths, outputs, parse_activation(o.activation), loss,
                          o.batch_norm, static_cast<float>(o.dropout));
  }
  ModelSpec spec;
  spec.inputs = inputs;
  spec.loss = loss;
  spec.layers = parse_layers(o.spec);
  int width = 0;
  for (const LayerSpec& layer : spec.layers) {
    if (const auto* d = std::get_if<DenseSpec>(&layer)) width = d->units;
  }
  if (width != outputs) {
    throw Error("--spec: the last dense layer has " + std::to_string(width) +
                " outputs; the data needs " + std::to_string(outputs) +
                (loss == Loss::xent ? " (one per class)" : " (one per target)"));
  }
  return spec;
}

TrainerSettings trainer_settings(const TrainOptions& o) {
  TrainerSettings s;
  s.threads = 0;  // the command's arena (run_train)
  s.shards = o.shards;
  s.batch_size = o.batch_size;
  s.learning_rate = o.learning_rate;
  s.weight_decay = o.weight_decay;
  s.seed = o.seed;
  s.shuffle = !o.no_shuffle;
  s.shuffle_buffer_bytes = static_cast<std::size_t>(o.shuffle_buffer_mb * 1024 * 1024);
  s.optimizer = parse_optimizer(o.optimizer);
  s.momentum = o.momentum;
  s.nesterov = o.nesterov;
  s.clip_grad_norm = o.clip_grad_norm;
  s.schedule = parse_schedule(o.lr_schedule);
  s.schedule_step_epochs = o.lr_step_epochs;
  s.schedule_gamma = o.lr_gamma;
  s.cosine_epochs = o.lr_cosine_epochs > 0 ? o.lr_cosine_epochs : o.epochs;
  return s;
}

void check_combinations(const TrainOptions& o) {
  if (o.stream && (o.cache || !o.cache_dir.empty())) {
    throw UsageError(
        "--cache keeps a parsed copy of data loaded into memory; --stream reads the file in "
        "blocks instead: give one of them");
  }
  const bool validation = !o.validation.empty() || o.validation_split > 0.0;
  if (o.early_stopping > 0 && !validation) {
    throw UsageError("--early-stopping watches the validation loss: give --val or --val-split");
  }
  if (o.restarts > 1 && !o.init.empty()) {
    throw UsageError("--restarts draws new initial weights; it cannot start from --init");
  }
  if (!o.checkpoint_every.empty() && parse_checkpoint_interval(o.checkpoint_every).any() &&
      o.out.empty() && o.checkpoint_dir.empty()) {
    throw UsageError("--checkpoint-every needs --out or --checkpoint-dir to know where to write");
  }
  if (o.nesterov && o.momentum <= 0.0f) throw UsageError("--nesterov needs --momentum > 0");
}

RunSettings run_settings(const TrainOptions& o, ModelSpec spec, const Communicator& comm) {
  RunSettings s;
  s.communicator = comm;
  s.spec = std::move(spec);
  s.trainer = trainer_settings(o);
  s.epochs = o.epochs;
  s.restarts = o.restarts;
  s.early_stopping = o.early_stopping;
  s.init = o.init;
  s.out = o.out;
  if (!o.checkpoint_every.empty()) {
    const CheckpointInterval every = parse_checkpoint_interval(o.checkpoint_every);
    s.checkpoint_every = every.epochs;
    s.checkpoint_every_steps = every.steps;
    s.checkpoint_every_seconds = every.seconds;
  }
  s.checkpoint_dir = o.checkpoint_dir;
  s.keep = o.keep;
  if (!o.max_memory.empty()) s.max_memory = parse_memory_size(o.max_memory);
  return s;
}

// What every file of the run records about its data and settings.
RunMetadata run_metadata(const TrainOptions& o, const TrainingData& data,
                         const std::optional<RunCheckpoint>& resumed, bool data_given) {
  RunMetadata m;
  // --data as first given, for display (a resumed run keeps it unless --data names a file).
  m.data_name = resumed && !data_given ? resumed->metadata().data_name : std::string();
  if (m.data_name.empty()) m.data_name = o.data;
  m.has_data_paths = true;
  m.data_path = absolute_path(o.data);
  m.validation_path = absolute_path(o.validation);
  m.feature_names = data.shape.feature_names;
  m.target_names = data.shape.target_names;
  m.class_names = data.shape.class_names;
  m.standardization = data.standardization;
  m.imputation = data.imputation;
  m.na_values = o.na_values;
  m.categorical = data.shape.categorical;
  try {
    m.settings = to_json(o).dump();
  } catch (const nlohmann::json::exception&) {
    throw Error(
        "a file name among the options is not valid UTF-8 text; checkpoints store it "
        "as JSON");
  }
  return m;
}

std::string describe_model(const ModelSpec& spec, const TrainOptions& o, int outputs) {
  if (!o.spec.empty()) return std::to_string(spec.inputs) + " -> " + format_layers(spec.layers);
  std::string text = std::to_string(spec.inputs);
  bool hidden = false;
  for (int width : o.layers) {
    if (width == 0) continue;  // an empty --layers item
    text += "-" + std::to_string(width);
    hidden = true;
  }
  text += "-" + std::to_string(outputs);
  if (hidden) text += " " + o.activation;
  if (o.batch_norm) text += " + batch norm";
  if (o.dropout > 0.0) text += " + dropout " + std::to_string(o.dropout).substr(0, 4);
  return text;
}

// What this rank's data holds in memory (rows in memory, or a streamed epoch's shuffle buffer),
// for the run's memory check.
std::uint64_t data_bytes(const TrainingData& data, const TrainerSettings& trainer) {
  if (data.streaming()) return trainer.shuffle ? trainer.shuffle_buffer_bytes : 0;
  std::uint64_t bytes = 0;
  for (const std::optional<DatasetPart>* part : {&data.train, &data.validation}) {
    if (!*part) continue;
    bytes += ((*part)->rows.features.size() + (*part)->rows.targets.size()) * sizeof(float);
  }
  return bytes;
}

// train_run refuses a run that does not fit in memory too; checking first lets the message name
// the options that make it smaller. Collective: every rank stops if one would run out.
void refuse_if_too_large(const MemoryEstimate& memory, std::uint64_t cap, bool streaming,
                         const Communicator& comm) {
  std::string refusal;
  try {
    check_memory(memory, cap, available_memory());
  } catch (const Error& e) {
    refusal = e.what();
  }
  if (comm.sum(refusal.empty() ? 0 : 1) == 0) return;
  if (refusal.empty()) throw Error("another rank does not have the memory this run needs");
  throw Error(refusal + " (--batch-size" + (streaming ? "" : ", --stream") + ", --layers)");
}

// Launchers bind ranks to cores (Open MPI: each of up to 2 ranks to one core, by default);
// threads beyond a rank's cores only take turns on them. Collective.
void warn_if_bound_too_tightly(const TrainOptions& o, const Communicator& comm,
                               ProgressReporter& report) {
  if (!Communicator::launched_by_mpi()) return;
  cpu_set_t cores;
  CPU_ZERO(&cores);
  const int bound = ::sched_getaffinity(0, sizeof cores, &cores) == 0 ? CPU_COUNT(&cores) : 0;
  const bool tight = bound > 0 && o.threads > bound;
  const std::int64_t ranks = comm.sum(tight ? 1 : 0);
  if (ranks == 0) return;
  report.message("warning: " + std::to_string(ranks) + " of " + std::to_string(comm.size()) +
                 " ranks may use fewer cores than --threads " + std::to_string(o.threads) +
                 " (rank " + std::to_string(comm.rank()) + " is bound to " + std::to_string(bound) +
                 "); give the launcher the cores, e.g. mpirun --bind-to socket or --bind-to "
                 "none, srun --cpus-per-task");
}

// Prints what the run reports, and keeps the --metrics file.
class RunPrinter {
 public:
  // speaks: false on every rank but rank 0, which alone prints and keeps the metrics file.
  RunPrinter(const TrainOptions& o, std::string header, const TrainingData& data, Loss loss,
             const std::optional<RunCheckpoint>& resumed, bool speaks)
      : o_(o),
        header_(std::move(header)),
        has_validation_(data.validation || data.validation_stream),
        regression_(loss == Loss::mse),
        resumed_(resumed),
        speaks_(speaks),
        report_(stdout,
                o.quiet || !speaks ? Verbosity::quiet
                                   : (o.verbose ? Verbosity::verbose : Verbosity::normal),
                !o.quiet && speaks && is_terminal(stdout)) {}

  ProgressReporter& report() { return report_; }
  // The run's memory estimate, shown with --verbose.
  void set_memory(const MemoryEstimate& estimate) { memory_ = estimate.describe(); }

  RunObserver observer() {
    RunObserver observer;
    observer.restart_started = [this](int r, const Trainer& trainer, bool resumed) {
      restart_started(r, trainer, resumed);
    };
    observer.epoch_finished = [this](const EpochResult& e) { epoch_finished(e); };
    observer.checkpoint_written = [this](const fs::path& file) {
      report_.detail("checkpoint " + file.string());
    };
    observer.stopped_early = [this](int epoch, const RunState& run) {
      report_.message("early stopping after epoch " + std::to_string(epoch) +
                      ": no lower validation loss for " + std::to_string(o_.early_stopping) +
                      " epochs (best " + std::to_string(run.best_loss) + " at epoch " +
                      std::to_string(run.best_epoch) + ", whose weights are kept)");
    };
    observer.restart_finished = [this](int r, double loss, bool best) {
      report_.message("restart " + std::to_string(r + 1) + "/" + std::to_string(o_.restarts) +
                      ": " + (has_validation_ ? "validation" : "training") + " loss " +
                      std::to_string(loss) + (best ? " (best so far)" : ""));
    };
    observer.result_written = [this](const fs::path& file, int chosen) {
      if (chosen < 0) {
        report_.message("wrote " + file.string());
      } else {
        report_.message("kept restart " + std::to_string(chosen + 1) + " of " +
                        std::to_string(o_.restarts) + "; wrote " + file.string());
      }
    };
    return observer;
  }

 private:
  using Clock = std::chrono::steady_clock;

  void restart_started(int r, const Trainer& trainer, bool resumed) {
    open_metrics();  // once the first model and trainer exist: bad settings leave it alone
    std::string line = header_ + ", shards " + std::to_string(trainer.shard_count()) + ", " +
                       o_.optimizer + ", BLAS core " + blas_core_name();
    if (o_.restarts > 1) {
      line += " | restart " + std::to_string(r + 1) + "/" + std::to_string(o_.restarts);
    }
    if (resumed) {
      line += " | resumed at epoch " + std::to_string(trainer.epochs_completed());
      if (const std::int64_t step = trainer.epoch_position().step; step > 0) {
        line += " step " + std::to_string(step);
      }
      line += " from " + o_.resume;
    }
    report_.message(line);
    if (const std::string note = blas_kernel_note(); r == 0 && !note.empty()) {
      report_.detail("note: " + note);
    }
    if (r == 0 && !memory_.empty()) report_.detail("memory: about " + memory_);
  }

  void epoch_finished(const EpochResult& e) {
    EpochSummary summary;
    summary.epoch = e.epoch;
    summary.epochs = o_.epochs;
    summary.restart = e.restart;
    summary.restarts = o_.restarts;
    summary.train_loss = e.train.loss;
    summary.has_validation = has_validation_;
    summary.validation_loss = e.evaluation.loss;
    summary.regression = regression_;
    summary.accuracy = e.evaluation.accuracy;
    summary.rmse = e.evaluation.rmse;
    summary.epoch_seconds = e.train_seconds;
    summary.samples_per_second = static_cast<double>(e.rows_trained) / e.train_seconds;
    summary.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    summary.learning_rate = e.learning_rate;
    summary.gradient_norm = e.gradient_norm;
    summary.improved = has_validation_ && e.improved;  // "improved" only for a validation loss
    report_.end_epoch(summary);
    if (metrics_) metrics_->write(summary);
  }

  void open_metrics() {
    if (o_.metrics.empty() || metrics_ || !speaks_) return;
    if (!resumed_) {
      metrics_ = std::make_unique<MetricsLog>(o_.metrics, false);
      return;
    }
    // Epochs after the checkpoint are trained again: their old lines go.
    const RunState& run = resumed_->metadata().run;
    const bool fresh_restart = run.weights_restart != run.restart && !run.restarts_done;
    metrics_ = fresh_restart ? std::make_unique<MetricsLog>(o_.metrics, run.restart - 1, o_.epochs)
                             : std::make_unique<MetricsLog>(o_.metrics, run.weights_restart,
                                                            resumed_->metadata().epochs);
  }

  const TrainOptions& o_;
  std::string header_;
  bool has_validation_;
  bool regression_;
  const std::optional<RunCheckpoint>& resumed_;
  bool speaks_;
  ProgressReporter report_;
  std::unique_ptr<MetricsLog> metrics_;
  std::string memory_;
  Clock::time_point start_ = Clock::now();
};

// A word for a shell command line, quoted only when it needs to be.
std::string shell_word(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_./=:,+@%") == std::string::npos) {
    return word;
  }
  std::string quoted = "'";
  for (const char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// The command that continues a stopped run: the checkpoint records the settings and data, so
// only the output options given on this command line are repeated.
std::string resume_command(const TrainOptions& o, const CLI::App& command, const RunStop& stop) {
  std::string line = "shardprop train --resume " + shell_word(stop.checkpoint.string());
  if (!o.out.empty() && fs::path(o.out) != stop.checkpoint) line += " --out " + shell_word(o.out);
  auto repeat = [&](const char* option, const std::string& value) {
    if (command.count(option) > 0) line += std::string(" ") + option + " " + shell_word(value);
  };
  repeat("--checkpoint-every", o.checkpoint_every);
  repeat("--checkpoint-dir", o.checkpoint_dir);
  repeat("--keep", std::to_string(o.keep));
  repeat("--metrics", o.metrics);
  repeat("--threads", std::to_string(o.threads));
  return line;
}

// The data as the run sees it: one epoch of training with the progress bar, and the loss
// compared between epochs (validation data, or the training data without it).
RunData run_data(const TrainOptions& o, TrainingData& data, ProgressReporter& report) {
  RunData run;
  run.train_epoch = [&o, &data, &report](Trainer& trainer) {
    report.begin_epoch(trainer.epochs_completed() + 1, o.epochs,
                       data.streaming() ? data.train_stream.total_rows : data.train->total_rows);
    const ProgressCallback progress = [&](std::int64_t done, std::int64_t) { report.update(done); };
    try {
      return data.streaming() ? trainer.train_epoch(data.train_stream, progress)
                              : trainer.train_epoch(*data.train, progress);
    } catch (const CollectiveError& e) {
      throw CollectiveError(o.data + ": " + e.what() + "; no weights written for this epoch");
    } catch (const Error& e) {
      throw Error(o.data + ": " + e.what() + "; no weights written for this epoch");
    }
  };
  // Without validation data the epoch's running metrics stand in, unless --eval-train asks for
  // a pass over the training data.
  if (!data.validation && !data.validation_stream && !o.eval_train) return run;
  run.evaluate = [&data](const Trainer& trainer) {
    if (data.validation_stream) return trainer.evaluate(*data.validation_stream);
    if (data.validation) return trainer.evaluate(*data.validation);
    return data.streaming() ? trainer.evaluate(data.train_stream) : trainer.evaluate(*data.train);
  };
  return run;
}

int train(TrainOptions o, const CLI::App& command, const Communicator& comm) {
  check_spec_text(o, command);
  std::optional<RunCheckpoint> resumed = open_resumed_run(o, command);
  if (o.data.empty()) throw UsageError("--data is required (or --resume a checkpoint)");
  check_combinations(o);
  if (o.data == "-") {
    if (comm.size() > 1) {
      throw UsageError(
          "--data -: under mpirun each rank reads its own part of the file by byte offsets, "
          "which standard input does not have: write the data to a file first");
    }
    if (o.cache || !o.cache_dir.empty()) {
      throw UsageError(
          "--cache keeps a parsed copy keyed by a file's size and time, which standard input "
          "does not have: leave --cache out, or write the data to a file first");
    }
    spool_standard_input();  // training reads its data several times
  }

  std::string loss_reason;
  const Loss loss = choose_loss(o, loss_reason);
  o.loss = std::string(to_string(loss));  // stored resolved, so a resume cannot re-decide
  o.stream = should_stream(o, comm);
  TrainingData data = load_training_data(o, loss, stored_data_state(resumed), comm);
  const int outputs = output_count(o, data.shape, loss);
  RunSettings settings =
      run_settings(o, build_spec(o, data.shape.feature_count, outputs, loss), comm);
  settings.data_bytes = data_bytes(data, settings.trainer);

  std::string header = "shardprop " + version() + " | " + o.data + ": ";
  header += data.streaming() ? "streamed" : std::to_string(data.shape.rows) + " rows";
  header += ", " + std::to_string(data.shape.feature_count) + " features | model " +
            describe_model(settings.spec, o, outputs) + ", loss " + std::string(to_string(loss));
  if (!loss_reason.empty()) header += " (auto: " + loss_reason + ")";
  header += " | batch " + std::to_string(o.batch_size);
  if (comm.size() > 1) header += ", " + std::to_string(comm.size()) + " ranks";
  RunPrinter printer(o, std::move(header), data, loss, resumed, comm.rank() == 0);
  warn_if_bound_too_tightly(o, comm, printer.report());
  MemoryEstimate memory =
      estimate_training_memory(settings.spec, settings.trainer, comm.size(), o.early_stopping > 0);
  memory.data = settings.data_bytes;
  printer.set_memory(memory);
  refuse_if_too_large(memory, settings.max_memory, data.streaming(), comm);

  // From here on SIGINT, SIGTERM and SIGUSR1 stop at a step boundary with a checkpoint; before,
  // there is nothing to save and they end the process as usual.
  settings.stop = install_stop_signals();
  RunObserver observer = printer.observer();
  observer.stopped = [&](const RunStop& stop) {
    if (comm.rank() != 0) return;
    if (is_terminal(stdout)) std::fputc('\n', stderr);  // off a progress bar's line
    std::fprintf(stderr,
                 "shardprop: stopped by %s after epoch %d step %lld; checkpoint written to %s; "
                 "resume with: %s\n",
                 signal_name(stop.request).c_str(), stop.epochs, static_cast<long long>(stop.step),
                 stop.checkpoint.string().c_str(), resume_command(o, command, stop).c_str());
    std::fflush(stderr);
  };
  const RunState state =
      train_run(settings, run_metadata(o, data, resumed, command.count("--data") > 0),
                run_data(o, data, printer.report()), observer, resumed ? &*resumed : nullptr);
  if (const std::uint64_t peak = peak_resident_memory(); peak > 0) {
    printer.report().detail("memory: peak resident " + format_bytes(peak));
  }
  return state.stop_request != 0 ? kStoppedStatus : 0;
}

}  // namespace

int run_train(TrainOptions o, const CLI::App& command, const Communicator& comm) {
  // The command owns the thread count: CSV loading, stream parsing and training all run in
  // this arena (the library runs in its caller's arena, as for evaluate and predict). Under
  // MPI, --threads counts each rank's threads.
  CommandArena arena(o.threads);
  return arena.execute([&] { return train(std::move(o), command, comm); });
}

}  // namespace shardprop::cli
