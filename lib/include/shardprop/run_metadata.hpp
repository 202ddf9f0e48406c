// What a training run records in its checkpoints beyond the tensors: the data it trained on,
// the caller's settings, the seed and epoch count of the weights, and where a run of several
// restarts stands. One type, one writer and one validating reader, so no caller builds or
// parses these metadata keys itself. Leaves out the model and optimizer state (checkpoint.hpp).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/trained_model.hpp"
#include "shardprop/trainer.hpp"

namespace shardprop {

// Where a run of R restarts stands, beyond the trainer's own counters.
struct RunState {
  int restart = 0;             // the restart being trained (or to train next), 0-based
  int weights_restart = 0;     // the restart the file's weights belong to
  bool restarts_done = false;  // every restart finished; the file holds the chosen one
  int best_restart = -1;       // the best finished restart so far (-1: none yet)
  double best_restart_loss = std::numeric_limits<double>::infinity();
  // Early stopping within the current restart: the lowest loss so far, its epoch (1-based,
  // 0: none yet), and the epochs since then without a lower one.
  double best_loss = std::numeric_limits<double>::infinity();
  int best_epoch = 0;
  int bad_epochs = 0;
  // What train_run returns only (never stored): the stop request (RunSettings::stop) that ended
  // the run early, 0 when it ran to its end.
  int stop_request = 0;
};

// Everything a run records beyond its tensors; each field names the metadata key it is stored
// under.
struct RunMetadata {
  // "shardprop.data": the training data as the caller named it (for display; may be empty).
  std::string data_name;
  // "shardprop.data_files": absolute paths of the training and validation data ("" for none),
  // which a resumed run reads. has_data_paths is false when the file does not record them
  // (files written before the key existed); the writer writes them whenever data_path is set.
  bool has_data_paths = false;
  std::string data_path;
  std::string validation_path;
  // "shardprop.features", "shardprop.targets", "shardprop.classes" (xent only) and
  // "shardprop.standardization" (when not empty), as TrainedModel describes them.
  std::vector<std::string> feature_names;
  std::vector<std::string> target_names;
  std::vector<std::string> class_names;
  Standardization standardization;
  // "shardprop.imputation", as TrainedModel describes it: written unless it says what a file
  // without the key stands for (policy error, the default na_values).
  Imputation imputation;
  std::vector<std::string> na_values = CsvOptions{}.na_values;
  // "shardprop.categorical" (when not empty), as TrainedModel describes it.
  std::vector<CategoricalColumn> categorical;
  // "shardprop.train_options": the caller's settings as the text of a JSON object (what the
  // caller needs to continue the run; the library only checks that it is an object).
  std::string settings = "{}";
  // "shardprop.seed": the seed of the restart the weights belong to.
  std::uint64_t seed = 0;
  // "shardprop.epochs": epochs completed. save_run_checkpoint (training_run.hpp) takes it
  // from the trainer, so it always equals the epoch count of "shardprop.state".
  int epochs = 0;
  // "shardprop.run".
  RunState run;
  // "shardprop.epoch_position", only in checkpoints taken inside an epoch (step > 0): where the
  // unfinished epoch after `epochs` stands. A file without it was taken between epochs.
  EpochPosition position;
};

// The metadata entries (key → string value) that record `m`, for save_checkpoint. Throws
// Error if a name or a path is not valid UTF-8 text (JSON holds only UTF-8), or if settings
// is not a JSON object.
std::map<std::string, std::string> run_metadata_entries(const RunMetadata& m);

// Reads the run keys of a file loaded with load_trained_model (whose names, classes and
// standardization were validated against the model, and are copied from it). Requires
// "shardprop.train_options", "shardprop.run" and "shardprop.epochs"; the others are optional.
// Throws Error "FILE: metadata 'KEY': what", or "FILE: no 'KEY' metadata: ..." when missing.
RunMetadata read_run_metadata(const TrainedModel& trained, const std::string& file);

}  // namespace shardprop
