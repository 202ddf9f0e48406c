// The options of `shardprop train`: their CLI11 definitions, and their JSON form stored in every
// checkpoint so that `--resume` continues with exactly the settings the run started with.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "shardprop/dataset.hpp"

namespace shardprop::cli {

struct TrainOptions {
  // Data.
  std::string data;
  std::string validation;
  double validation_split = 0.0;
  std::vector<std::string> targets;
  std::vector<std::string> ignore;
  std::vector<std::string> categorical;
  int max_categories = 1000;
  std::string delimiter = ",";
  bool no_header = false;
  std::int64_t skip_rows = 0;
  std::string comment;      // empty: none
  bool eval_train = false;  // without validation: a full inference pass over the training data
  bool no_standardize = false;
  bool cache = false;
  bool stream = false;
  double stream_above_mb = 0.0;  // 0: a quarter of physical memory
  double shuffle_buffer_mb = 64.0;
  std::string cache_dir;
  std::vector<std::string> na_values = CsvOptions{}.na_values;  // see parse_na_values
  std::string missing = "error";
  // Model.
  std::string spec;  // layer-spec text; replaces layers/activation/batch_norm/dropout
  std::vector<int> layers{16, 16};
  std::string activation = "relu";
  bool batch_norm = false;
  double dropout = 0.0;
  std::string loss = "auto";
  // Optimisation.
  int epochs = 10;
  int batch_size = 32;
  float learning_rate = 0.1f;
  float weight_decay = 0.0f;
  std::string optimizer = "sgd";
  float momentum = 0.0f;
  bool nesterov = false;
  std::string lr_schedule = "constant";
  int lr_step_epochs = 10;
  float lr_gamma = 0.1f;
  int lr_cosine_epochs = 0;  // 0: --epochs
  float clip_grad_norm = 0.0f;
  int early_stopping = 0;  // patience in epochs; 0: off
  int restarts = 1;
  int threads = 0;
  int shards = 0;
  std::uint64_t seed = 1;
  bool no_shuffle = false;
  // Files.
  std::string init;
  std::string resume;
  std::string out;
  std::string checkpoint_every;  // "" or "0": none; see CheckpointInterval
  std::string checkpoint_dir;
  int keep = 3;
  std::string max_memory;  // "" : no cap beyond the available memory
  std::string metrics;
  bool quiet = false;
  bool verbose = false;
  std::string config;
};

CLI::App* add_train_command(CLI::App& app, TrainOptions& options);

// --checkpoint-every: N or Nepochs (epochs), Nsteps (minibatch steps), Ns, Nm or Nh (seconds,
// minutes, hours of wall time); N a whole number, 0 for none. At most one is set.
struct CheckpointInterval {
  int epochs = 0;
  std::int64_t steps = 0;
  double seconds = 0.0;
  bool any() const { return epochs > 0 || steps > 0 || seconds > 0.0; }
};
// Throws UsageError naming the option and the accepted forms.
CheckpointInterval parse_checkpoint_interval(const std::string& text);

// The settings that decide what a run computes (not where files go, how it prints or how many
// threads run it), as stored in checkpoints under "shardprop.train_options".
nlohmann::json to_json(const TrainOptions& options);

// --config FILE: the command-line arguments the file stands for, leaving out the options
// already given on the command line. Unknown keys are a UsageError naming the file.
std::vector<std::string> config_arguments(const CLI::App& command, const std::string& file);

// For --resume: takes every stored setting the user did not give on the command line. A
// setting given with a value different from the stored one is an Error, except those a
// resumed run may change (--epochs, and which data files to read).
void apply_stored_options(TrainOptions& options, const nlohmann::json& stored,
                          const CLI::App& command, const std::string& file);

}  // namespace shardprop::cli
