// `shardprop train`. No mathematics here: everything goes through the public API. A run is
// R restarts (usually 1) of E epochs each; its state between epochs (counters, early stopping,
// the best restart so far) is stored in every checkpoint, so --resume continues it exactly.
#include "train_command.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "json_number.hpp"
#include "metrics_log.hpp"
#include "progress.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trained_model.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"
#include "train_data.hpp"
#include "usage_error.hpp"

namespace shardprop::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Where a run stands between two epochs, beyond what the trainer counts.
struct RunState {
  int restart = 0;             // the restart being trained (or to train next)
  int weights_restart = 0;     // the restart the file's weights belong to
  bool restarts_done = false;  // every restart finished; this file holds the chosen one
  int best_restart = -1;       // the best finished restart so far (its model is in --out)
  double best_restart_loss = std::numeric_limits<double>::infinity();
  // Early stopping within the current restart.
  double best_loss = std::numeric_limits<double>::infinity();
  int best_epoch = 0;
  int bad_epochs = 0;
};

json json_floats(const std::vector<float>& values) {
  json array = json::array();
  for (const float v : values) array.push_back(json_float(v));
  return array;
}

json number_or_null(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }
double number_or_infinity(const json& j) {
  return j.is_number() ? j.get<double>() : std::numeric_limits<double>::infinity();
}

json to_json(const RunState& s) {
  return {{"restart", s.restart},
          {"weights_restart", s.weights_restart},
          {"restarts_done", s.restarts_done},
          {"best_restart", s.best_restart},
          {"best_restart_loss", number_or_null(s.best_restart_loss)},
          {"best_loss", number_or_null(s.best_loss)},
          {"best_epoch", s.best_epoch},
          {"bad_epochs", s.bad_epochs}};
}

RunState run_state_from(const std::string& text, const std::string& file) {
  const json j = json::parse(text, nullptr, false);
  auto integer = [&](const char* key) {
    if (!j.contains(key) || !j[key].is_number_integer()) {
      throw Error(file + ": metadata 'shardprop.run': '" + key + "' is missing or not an integer");
    }
    return j[key].get<int>();
  };
  if (!j.is_object() || !j.contains("restarts_done") || !j["restarts_done"].is_boolean()) {
    throw Error(file + ": metadata 'shardprop.run' is malformed");
  }
  RunState s;
  s.restart = integer("restart");
  s.weights_restart = integer("weights_restart");
  s.restarts_done = j["restarts_done"].get<bool>();
  s.best_restart = integer("best_restart");
  s.best_restart_loss = number_or_infinity(j.value("best_restart_loss", json()));
  s.best_loss = number_or_infinity(j.value("best_loss", json()));
  s.best_epoch = integer("best_epoch");
  s.bad_epochs = integer("bad_epochs");
  return s;
}

std::string metadata_value(const std::map<std::string, std::string>& metadata,
                           const std::string& key, const std::string& file) {
  const auto found = metadata.find(key);
  if (found == metadata.end()) {
    throw Error(file + ": no '" + key + "' metadata: not a checkpoint of `shardprop train`");
  }
  return found->second;
}

int metadata_count(const std::map<std::string, std::string>& metadata, const std::string& key,
                   const std::string& file) {
  const std::string text = metadata_value(metadata, key, file);
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < 0) {
    throw Error(file + ": metadata '" + key + "' is not a count: '" + text + "'");
  }
  return value;
}

// The data files a run reads, as absolute paths, so that a resume started in another
// directory finds them ("shardprop.data" keeps the name as given, for display).
constexpr const char* kDataFilesKey = "shardprop.data_files";

std::string absolute_path(const std::string& file) {
  if (file.empty()) return file;
  std::error_code error;
  const fs::path path = fs::absolute(file, error);
  return error ? file : path.lexically_normal().string();
}

// For --resume: the recorded absolute paths of the files not given again on the command line.
// Checkpoints written before they were recorded keep the paths as typed.
void use_recorded_data_files(TrainOptions& o, const std::map<std::string, std::string>& metadata,
                             const CLI::App& command) {
  const auto found = metadata.find(kDataFilesKey);
  if (found == metadata.end()) return;
  const json files = json::parse(found->second, nullptr, false);
  if (!files.is_object()) throw Error(o.resume + ": metadata '" + kDataFilesKey + "' is malformed");
  auto take = [&](const char* key, const char* option, std::string& value) {
    if (command.count(option) > 0 || !files.contains(key)) return;
    if (!files[key].is_string()) {
      throw Error(o.resume + ": metadata '" + kDataFilesKey + "': '" + key + "' is not a path");
    }
    value = files[key].get<std::string>();
  };
  take("data", "--data", o.data);
  take("val", "--val", o.validation);
}

// A recorded data file that is gone: say which and how to point the run at it.
void require_recorded_file(const std::string& file, const char* option, const TrainOptions& o) {
  std::error_code error;
  if (file.empty() || fs::is_regular_file(file, error)) return;
  throw Error(o.resume + " was trained on " + file + ", which is not there (moved or deleted?); " +
              "give the file with " + option + " FILE");
}

// JSON text of what the user gave (file and column names): JSON holds only UTF-8 text, and
// other bytes are the input's fault, not a bug.
std::string json_text(const json& value, const std::string& what) {
  try {
    return value.dump();
  } catch (const json::exception&) {
    throw Error(what + " is not valid UTF-8 text; checkpoints store it as JSON");
  }
}

// Restart 0 uses the seed itself, so --restarts 1 is the plain run.
std::uint64_t restart_seed(std::uint64_t seed, int restart) {
  if (restart == 0) return seed;
  std::uint64_t x = seed + 0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(restart);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

ModelSpec build_spec(const TrainOptions& o, int inputs, int outputs, Loss loss) {
  if (o.spec.empty()) {
    return ModelSpec::mlp(inputs, o.layers, outputs, parse_activation(o.activation), loss,
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
  s.threads = o.threads;
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
  if (o.stream && o.validation_split > 0.0) {
    throw UsageError(
        "--val-split holds out rows of data loaded into memory; with --stream give a --val file");
  }
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
  if (o.checkpoint_every > 0 && o.out.empty() && o.checkpoint_dir.empty()) {
    throw UsageError("--checkpoint-every needs --out or --checkpoint-dir to know where to write");
  }
  if (o.nesterov && o.momentum <= 0.0f) throw UsageError("--nesterov needs --momentum > 0");
}

// Periodic checkpoints: NAME[.rRRR].epoch-EEEEEE.safetensors next to --out (or in
// --checkpoint-dir), NAME being --out's name without its extension. The newest --keep stay.
class PeriodicCheckpoints {
 public:
  PeriodicCheckpoints(const TrainOptions& o, bool several_restarts) : keep_(o.keep) {
    const fs::path out = o.out.empty() ? fs::path("checkpoint") : fs::path(o.out);
    directory_ = !o.checkpoint_dir.empty() ? fs::path(o.checkpoint_dir) : out.parent_path();
    if (directory_.empty()) directory_ = ".";
    stem_ = out.stem().string();
    several_restarts_ = several_restarts;
  }

  fs::path path(int restart, int epoch) const {
    char suffix[64];
    if (several_restarts_) {
      std::snprintf(suffix, sizeof suffix, ".r%03d.epoch-%06d.safetensors", restart, epoch);
    } else {
      std::snprintf(suffix, sizeof suffix, ".epoch-%06d.safetensors", epoch);
    }
    return directory_ / (stem_ + suffix);
  }

  void prepare() const {
    std::error_code ignored;
    fs::create_directories(directory_, ignored);
  }

  // Removes all but the newest `keep` of this run's periodic checkpoints (names sort by age).
  // Best effort: a directory that cannot be listed keeps its files.
  void prune() const {
    const std::regex pattern(R"((\.r\d{3})?\.epoch-\d{6}\.safetensors)");
    std::vector<fs::path> ours;
    std::error_code error;
    for (fs::directory_iterator it(directory_, error); !error && it != fs::directory_iterator();
         it.increment(error)) {
      const std::string name = it->path().filename().string();
      if (name.size() <= stem_.size() || name.compare(0, stem_.size(), stem_) != 0) continue;
      if (std::regex_match(name.substr(stem_.size()), pattern)) ours.push_back(it->path());
    }
    std::sort(ours.begin(), ours.end());
    for (std::size_t i = 0; i + static_cast<std::size_t>(keep_) < ours.size(); ++i) {
      fs::remove(ours[i], error);
    }
  }

 private:
  int keep_;
  bool several_restarts_ = false;
  fs::path directory_;
  std::string stem_;
};

std::string describe_model(const ModelSpec& spec, const TrainOptions& o, int outputs) {
  if (!o.spec.empty()) return std::to_string(spec.inputs) + " -> " + format_layers(spec.layers);
  std::string text = std::to_string(spec.inputs);
  for (int width : o.layers) text += "-" + std::to_string(width);
  text += "-" + std::to_string(outputs) + " " + o.activation;
  if (o.batch_norm) text += " + batch norm";
  if (o.dropout > 0.0) text += " + dropout " + std::to_string(o.dropout).substr(0, 4);
  return text;
}

}  // namespace

int run_train(TrainOptions o, const CLI::App& command) {
  const Verbosity verbosity =
      o.quiet ? Verbosity::quiet : (o.verbose ? Verbosity::verbose : Verbosity::normal);
  ProgressReporter report(stdout, verbosity, !o.quiet && is_terminal(stdout));

  // --- What is being resumed ------------------------------------------------------------
  if (command.count("--spec") > 0 && o.spec.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw UsageError(
        "--spec is empty: give the layer stack, e.g. --spec \"dense(64) relu dense(10)\", or "
        "leave it out to use --layers");
  }
  const bool resuming = !o.resume.empty();
  // Without --out, a resumed run continues in the file it resumed (replaced atomically).
  if (resuming && o.out.empty()) o.out = o.resume;
  RunState run;
  StoredDataState stored_data;
  // The checkpoint read once: its weights, the label order and standardization they were
  // trained with, and its metadata (all validated).
  std::optional<TrainedModel> resumed;
  int resumed_epochs = 0;
  std::string data_name;  // --data as first given, recorded for display
  if (resuming) {
    resumed = load_trained_model(o.resume);
    const std::map<std::string, std::string>& meta = resumed->metadata;
    const json stored =
        json::parse(metadata_value(meta, "shardprop.train_options", o.resume), nullptr, false);
    apply_stored_options(o, stored, command, o.resume);
    use_recorded_data_files(o, meta, command);
    if (command.count("--data") == 0) {
      require_recorded_file(o.data, "--data", o);
      if (const auto shown = meta.find("shardprop.data"); shown != meta.end()) {
        data_name = shown->second;
      }
    }
    if (command.count("--val") == 0) require_recorded_file(o.validation, "--val", o);
    run = run_state_from(metadata_value(meta, "shardprop.run", o.resume), o.resume);
    resumed_epochs = metadata_count(meta, "shardprop.epochs", o.resume);
    stored_data.class_names = resumed->class_names;
    if (!resumed->standardization.empty()) stored_data.standardization = resumed->standardization;
  }
  if (o.data.empty()) throw UsageError("--data is required (or --resume a checkpoint)");
  if (data_name.empty()) data_name = o.data;
  check_combinations(o);

  // --- Data and model -------------------------------------------------------------------
  std::string loss_reason;
  const Loss loss = choose_loss(o, loss_reason);
  o.loss = std::string(to_string(loss));  // stored resolved, so a resume cannot re-decide
  o.stream = should_stream(o);
  TrainingData data = load_training_data(o, loss, stored_data);
  const Dataset& shape = data.shape;
  int outputs = shape.target_width;
  if (loss == Loss::xent) {
    outputs = shape.class_count();
    if (outputs < 2) {
      throw Error(o.data + ": the target has a single class ('" + shape.class_names.front() +
                  "'); xent needs at least 2");
    }
  }
  const ModelSpec spec = build_spec(o, shape.feature_count, outputs, loss);
  TrainerSettings settings = trainer_settings(o);
  const bool has_validation = data.validation || data.validation_stream;
  const bool several = o.restarts > 1;
  PeriodicCheckpoints periodic(o, several);
  // Opened once the first model and trainer exist, so bad settings leave the file alone.
  std::unique_ptr<MetricsLog> metrics;
  auto open_metrics = [&] {
    if (o.metrics.empty() || metrics) return;
    if (!resuming) {
      metrics = std::make_unique<MetricsLog>(o.metrics, false);
      return;
    }
    // Epochs after the checkpoint are trained again: their old lines go.
    const bool fresh_restart = run.weights_restart != run.restart && !run.restarts_done;
    metrics = fresh_restart
                  ? std::make_unique<MetricsLog>(o.metrics, run.restart - 1, o.epochs)
                  : std::make_unique<MetricsLog>(o.metrics, run.weights_restart, resumed_epochs);
  };

  const json data_files{{"data", absolute_path(o.data)}, {"val", absolute_path(o.validation)}};
  std::map<std::string, std::string> base_metadata{
      {"shardprop.data", data_name},
      {kDataFilesKey, json_text(data_files, "a data file name")},
      {kFeaturesKey, json_text(shape.feature_names, o.data + ": a feature column name")},
      {kTargetsKey, json_text(shape.target_names, o.data + ": a target column name")},
      {"shardprop.train_options", json_text(to_json(o), "a file name among the options")}};
  if (!shape.class_names.empty()) {
    base_metadata[kClassesKey] = json_text(shape.class_names, o.data + ": a class name");
  }
  if (!data.standardization.empty()) {
    base_metadata[kStandardizationKey] = json{{"mean", json_floats(data.standardization.mean)},
                                              {"scale", json_floats(data.standardization.scale)}}
                                             .dump();
  }
  auto metadata_for = [&](const Trainer& trainer, RunState state, int weights_restart) {
    state.weights_restart = weights_restart;
    std::map<std::string, std::string> m = base_metadata;
    m["shardprop.epochs"] = std::to_string(trainer.epochs_completed());
    m["shardprop.seed"] = std::to_string(restart_seed(o.seed, weights_restart));
    m["shardprop.run"] = to_json(state).dump();
    return m;
  };

  std::string data_text = o.data + ": ";
  data_text += data.streaming() ? "streamed" : std::to_string(shape.rows) + " rows";
  data_text += ", " + std::to_string(shape.feature_count) + " features";
  std::string loss_text = std::string(to_string(loss));
  if (!loss_reason.empty()) loss_text += " (auto: " + loss_reason + ")";

  auto train_epoch = [&](Trainer& trainer) {
    const ProgressCallback progress = [&](std::int64_t done, std::int64_t) { report.update(done); };
    try {
      return data.streaming() ? trainer.train_epoch(*data.train_stream, progress)
                              : trainer.train_epoch(*data.train, progress);
    } catch (const Error& e) {
      throw Error(o.data + ": " + e.what() + "; no weights written for this epoch");
    }
  };
  // Without a validation set, the quality on the training data after the epoch.
  auto evaluate = [&](const Trainer& trainer) {
    if (data.validation_stream) return trainer.evaluate(*data.validation_stream);
    if (data.validation) return trainer.evaluate(*data.validation);
    return data.streaming() ? trainer.evaluate(*data.train_stream) : trainer.evaluate(*data.train);
  };

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const int last_restart = run.restarts_done ? run.best_restart : o.restarts - 1;
  const int first_restart = run.restarts_done ? run.best_restart : run.restart;
  for (int r = first_restart; r <= last_restart; ++r) {
    // A file written when a restart finished holds that restart's weights; the next one starts
    // afresh.
    const bool resume_this = resuming && r == first_restart && run.weights_restart == r;
    const std::uint64_t seed = restart_seed(o.seed, r);
    settings.seed = seed;
    Model model = resume_this ? std::move(resumed->model) : Model(spec);
    if (resume_this && format_layers(model.spec().layers) != format_layers(spec.layers)) {
      throw Error(o.resume + ": holds the model " + format_layers(model.spec().layers) +
                  ", the settings describe " + format_layers(spec.layers));
    }
    if (!resume_this) {
      if (o.init.empty()) {
        model.initialize(seed);
      } else {
        load_safetensors(model, o.init);
      }
    }
    Trainer trainer(model, settings);
    open_metrics();
    if (resume_this) {
      load_training_state(trainer, model, o.resume);
    } else {
      run.restart = r;
      run.best_loss = std::numeric_limits<double>::infinity();
      run.best_epoch = 0;
      run.bad_epochs = 0;
    }
    std::string header = "shardprop " + version() + " | " + data_text + " | model " +
                         describe_model(spec, o, outputs) + ", loss " + loss_text + " | batch " +
                         std::to_string(o.batch_size) + ", shards " +
                         std::to_string(trainer.shard_count()) + ", " + o.optimizer +
                         ", BLAS core " + blas_core_name();
    if (several) header += " | restart " + std::to_string(r + 1) + "/" + std::to_string(o.restarts);
    if (resume_this) {
      header +=
          " | resumed at epoch " + std::to_string(trainer.epochs_completed()) + " from " + o.resume;
    }
    report.message(header);

    double final_loss = std::numeric_limits<double>::infinity();
    for (int epoch = trainer.epochs_completed() + 1; epoch <= o.epochs; ++epoch) {
      if (o.early_stopping > 0 && run.bad_epochs >= o.early_stopping) break;
      report.begin_epoch(epoch, o.epochs, data.streaming() ? -1 : data.train->rows);
      EpochSummary summary;
      summary.learning_rate = trainer.learning_rate();
      const auto epoch_start = Clock::now();
      const Metrics train = train_epoch(trainer);
      summary.epoch_seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      const Metrics eval = evaluate(trainer);
      summary.epoch = epoch;
      summary.epochs = o.epochs;
      summary.restart = r;
      summary.restarts = o.restarts;
      summary.train_loss = train.loss;
      summary.has_validation = has_validation;
      summary.validation_loss = eval.loss;
      summary.regression = loss == Loss::mse;
      summary.accuracy = eval.accuracy;
      summary.rmse = eval.rmse;
      summary.samples_per_second = static_cast<double>(train.rows) / summary.epoch_seconds;
      summary.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
      summary.gradient_norm = trainer.last_gradient_norm();
      final_loss = eval.loss;
      // Early stopping's bookkeeping; "improved" is shown only for a validation loss.
      const bool improved = eval.loss < run.best_loss;
      summary.improved = has_validation && improved;
      if (improved) {
        run.best_loss = eval.loss;
        run.best_epoch = epoch;
        run.bad_epochs = 0;
      } else {
        ++run.bad_epochs;
      }
      report.end_epoch(summary);
      if (metrics) metrics->write(summary);
      if (o.checkpoint_every > 0 && epoch % o.checkpoint_every == 0 && epoch < o.epochs) {
        periodic.prepare();
        const fs::path file = periodic.path(r, epoch);
        save_checkpoint(model, trainer, file, metadata_for(trainer, run, r));
        periodic.prune();
        report.detail("checkpoint " + file.string());
      }
    }
    if (o.early_stopping > 0 && run.bad_epochs >= o.early_stopping) {
      report.message("early stopping after epoch " + std::to_string(trainer.epochs_completed()) +
                     ": no lower validation loss for " + std::to_string(o.early_stopping) +
                     " epochs (best " + std::to_string(run.best_loss) + " at epoch " +
                     std::to_string(run.best_epoch) + ")");
    }
    if (!std::isfinite(final_loss)) {
      final_loss = evaluate(trainer).loss;  // nothing trained this time: score the model as it is
    }
    if (!several || run.restarts_done) {
      if (!o.out.empty()) {
        save_checkpoint(model, trainer, o.out, metadata_for(trainer, run, r));
        report.message("wrote " + o.out);
      }
      break;
    }
    // Several restarts: --out always holds the best finished restart, a complete checkpoint.
    const bool best = final_loss < run.best_restart_loss;
    if (best) {
      run.best_restart = r;
      run.best_restart_loss = final_loss;
    }
    report.message("restart " + std::to_string(r + 1) + "/" + std::to_string(o.restarts) + ": " +
                   (has_validation ? "validation" : "training") + " loss " +
                   std::to_string(final_loss) + (best ? " (best so far)" : ""));
    run.restart = r + 1;  // a resume from --out goes on with the next restart
    if (best && !o.out.empty())
      save_checkpoint(model, trainer, o.out, metadata_for(trainer, run, r));
  }
  if (several && !run.restarts_done && !o.out.empty()) {
    // Mark the chosen restart's file as the run's result (and say so).
    Model best = load_model(o.out);
    Trainer best_trainer(best, [&] {
      TrainerSettings s = settings;
      s.seed = restart_seed(o.seed, run.best_restart);
      return s;
    }());
    load_training_state(best_trainer, best, o.out);
    RunState done = run;
    done.restarts_done = true;
    done.restart = run.best_restart;
    save_checkpoint(best, best_trainer, o.out, metadata_for(best_trainer, done, run.best_restart));
    report.message("kept restart " + std::to_string(run.best_restart + 1) + " of " +
                   std::to_string(o.restarts) + "; wrote " + o.out);
  }
  return 0;
}

}  // namespace shardprop::cli
