// `shardprop train` options: definitions, and the stored form --resume reads back.
#include "train_options.hpp"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>

#include "input_file.hpp"
#include "json_number.hpp"
#include "model_input.hpp"
#include "preamble_options.hpp"
#include "shardprop/error.hpp"
#include "shardprop/memory_estimate.hpp"
#include "usage_error.hpp"

namespace shardprop::cli {
namespace {

// A whole decimal number (strtod's syntax, nothing after it).
bool parse_number(const std::string& text, double& number) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  number = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && errno != ERANGE;
}

// The minimum as a user writes it: "0", "1", "0.5".
std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

// CLI11's PositiveNumber prints its range as 0 to 1.8e308 in full; say the rule instead.
CLI::Validator at_least(double minimum) {
  return CLI::Validator(
      [minimum](std::string& value) -> std::string {
        double number = 0.0;
        if (!parse_number(value, number) || !(number >= minimum)) {
          return "must be a number >= " + number_text(minimum) + ", got '" + value + "'";
        }
        return {};
      },
      ">=" + number_text(minimum));
}

std::string trim_copy(const std::string& text) {
  const std::size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return {};
  return text.substr(begin, text.find_last_not_of(" \t\r\n") - begin + 1);
}

}  // namespace

CLI::App* add_train_command(CLI::App& app, TrainOptions& o) {
  CLI::App* cmd = app.add_subcommand("train", "Train a network on a CSV file");
  cmd->footer(
      "Signals: SIGTERM, SIGINT (Ctrl-C) and SIGUSR1 finish the current step, write a checkpoint "
      "(to --out; with --restarts or without --out, NAME.epoch-E[.step-S].safetensors next to "
      "--out, in --checkpoint-dir or in the current directory), print the command that resumes "
      "it and exit with status 75. A second Ctrl-C aborts at once.\n"
      "Exit status: 0 success, 1 bad input or I/O failure, 2 usage error, 3 internal error, 75 "
      "stopped by a signal with a checkpoint to resume.");
  cmd->add_option("--data", o.data,
                  "Training CSV (RFC 4180; numeric features; see docs/csv.md), plain, gzip or "
                  "zstd; - reads standard input, which is first copied to an unlinked file in "
                  "$TMPDIR (training reads its data several times); required unless --resume "
                  "names the checkpoint of a run, which records it")
      ->check(kInputFile);
  auto* val = cmd->add_option("--val", o.validation,
                              "Validation CSV (same columns); reported after every epoch")
                  ->check(CLI::ExistingFile);
  cmd->add_flag("--eval-train", o.eval_train,
                "Without --val or --val-split, also evaluate the whole training set after each "
                "epoch (an extra pass in inference mode); otherwise the epoch line shows the "
                "running loss and accuracy of the epoch's steps");
  cmd->add_option("--val-split", o.validation_split,
                  "Hold out this fraction of --data for validation (seeded by --seed)")
      ->check(CLI::Range(0.0, 1.0).description("in (0, 1)"))
      ->excludes(val);
  cmd->add_option("--target", o.targets,
                  "Target column(s): header names or 0-based indices, comma-separated; several "
                  "make a multi-output regression (default: the last column)")
      ->delimiter(',');
  cmd->add_option("--ignore", o.ignore,
                  "Columns to skip: names or 0-based indices, comma-separated")
      ->delimiter(',');
  cmd->add_option("--categorical", o.categorical,
                  "Feature columns of text to one-hot encode (one input per category, named "
                  "COLUMN=CATEGORY): names or 0-based indices, comma-separated")
      ->delimiter(',');
  cmd->add_option("--max-categories", o.max_categories,
                  "More distinct categories than this in a --categorical column is an error "
                  "(0: no cap)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--delimiter", o.delimiter, "Field delimiter: one character, or 'tab'")
      ->capture_default_str();
  cmd->add_flag("--no-header", o.no_header, "The first line is data; columns are named 0, 1, ...");
  add_preamble_options(cmd, o.skip_rows, o.comment);
  cmd->add_option_function<std::string>(
      "--na-values", [&o](const std::string& list) { o.na_values = parse_na_values(list); },
      "Field texts that mean a missing value, comma-separated (an empty item: the empty "
      "field; 'none': no text at all); default: the empty field, NA, N/A, n/a, NaN, nan, -nan, "
      "NULL, null, None, ?, #N/A, <NA>");
  cmd->add_option("--missing", o.missing,
                  "What a missing feature value does: error (name it), mean, median or zero "
                  "(filled in with statistics of the training data, stored in --out), or drop "
                  "(the row is left out); a missing target is an error unless drop")
      ->check(CLI::IsMember({"error", "mean", "median", "zero", "drop"}))
      ->capture_default_str();
  cmd->add_flag("--cache", o.cache,
                "Keep a binary copy of each parsed CSV next to it (.NAME.HASH.spcache) and reuse "
                "it while the CSV and the parse options are unchanged");
  cmd->add_option("--cache-dir", o.cache_dir,
                  "Like --cache, with the cache files in this directory");
  cmd->add_flag("--stream", o.stream,
                "Read --data in bounded blocks instead of loading it (for files larger than "
                "memory); shuffling then uses a bounded buffer (see --shuffle-buffer-mb)");
  cmd->add_option("--stream-above-mb", o.stream_above_mb,
                  "Stream automatically when --data is larger than this (default: a quarter of "
                  "physical memory)")
      ->check(at_least(0));
  cmd->add_option("--shuffle-buffer-mb", o.shuffle_buffer_mb,
                  "Rows buffered for shuffling while streaming, in MB")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_flag("--no-standardize", o.no_standardize,
                "Keep features as they are (default: z-score with statistics of the training "
                "data, stored in --out)");
  auto* spec = cmd->add_option("--spec", o.spec,
                               "The layer stack as text, e.g. \"dense(256) bn relu dropout(0.2) "
                               "dense(10)\" (see docs/model-spec.md); replaces --layers, "
                               "--activation, --batch-norm and --dropout");
  cmd->add_option("--layers", o.layers, "Hidden layer widths, e.g. 16,16 (empty: none)")
      ->delimiter(',')
      ->check(CLI::Validator(
          [check = at_least(1)](std::string& value) {
            // --layers '' (or --layers= ) is no hidden layer: a linear or logistic model.
            return value.empty() ? std::string() : check(value);
          },
          "", "at least 1 or empty"))
      ->capture_default_str()
      ->excludes(spec);
  cmd->add_option("--activation", o.activation,
                  "Hidden activation (leaky_relu: slope 0.01; another slope through --spec)")
      ->check(CLI::IsMember({"sigmoid", "tanh", "relu", "leaky_relu", "identity"}))
      ->capture_default_str()
      ->excludes(spec);
  cmd->add_option("--dropout", o.dropout,
                  "Inverted dropout with this rate after each hidden activation (0: none)")
      ->check(CLI::Range(0.0, 0.999999).description("in [0, 1)"))
      ->excludes(spec);
  cmd->add_option("--loss", o.loss,
                  "auto (xent for class labels, mse for numbers), mse (regression), xent "
                  "(classes, softmax), bce (targets in [0, 1], sigmoid)")
      ->check(CLI::IsMember({"auto", "mse", "xent", "bce"}))
      ->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "Passes over the data (0: write the initialised model)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "Rows per minibatch")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--lr", o.learning_rate, "Learning rate η")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay, "Weight decay λ (weights only, not biases)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--optimizer", o.optimizer, "sgd or adam (as torch.optim's)")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  cmd->add_option("--momentum", o.momentum, "SGD momentum μ in [0, 1)")
      ->check(CLI::Range(0.0, 0.999999).description("in [0, 1)"))
      ->capture_default_str();
  cmd->add_flag("--nesterov", o.nesterov, "Nesterov momentum (with --momentum)");
  cmd->add_option("--lr-schedule", o.lr_schedule,
                  "constant; step (× --lr-gamma every --lr-step-epochs); cosine (to 0 over "
                  "--lr-cosine-epochs, default --epochs)")
      ->check(CLI::IsMember({"constant", "step", "cosine"}))
      ->capture_default_str();
  cmd->add_option("--lr-step-epochs", o.lr_step_epochs,
                  "Epochs between steps of --lr-schedule step")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--lr-gamma", o.lr_gamma, "Factor of each step of --lr-schedule step")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--lr-cosine-epochs", o.lr_cosine_epochs,
                  "Epochs over which --lr-schedule cosine falls to 0 (0: --epochs)")
      ->check(at_least(0));
  cmd->add_option("--clip-grad-norm", o.clip_grad_norm,
                  "Scale each minibatch gradient to at most this L2 norm (0: off)")
      ->check(at_least(0));
  cmd->add_option("--early-stopping", o.early_stopping,
                  "Stop after this many epochs without a lower validation loss (0: off); --out "
                  "then holds the weights of the epoch with the lowest validation loss (and the "
                  "latest ones, which --resume continues from)")
      ->check(at_least(0));
  cmd->add_option("--restarts", o.restarts,
                  "Train from this many random initialisations and keep the one with the lowest "
                  "final validation loss (with --early-stopping: the lowest of its best epoch)")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--threads", o.threads, "Worker threads (0: all cores)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--shards", o.shards,
                  "Shards per minibatch (0: automatic from model and batch size; results depend "
                  "on shards, never on threads)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed for initialisation and shuffling")->capture_default_str();
  cmd->add_flag("--no-shuffle", o.no_shuffle, "Minibatches are consecutive rows in file order");
  cmd->add_flag("--batch-norm", o.batch_norm,
                "Batch normalization after each hidden dense layer, before its activation "
                "(statistics over the whole minibatch, however it is sharded)")
      ->excludes(spec);
  auto* init = cmd->add_option("--init", o.init,
                               "Start from these weights (safetensors) instead of random ones")
                   ->check(CLI::ExistingFile);
  cmd->add_option("--resume", o.resume,
                  "Continue the run this checkpoint records, with its settings, to --epochs in "
                  "total")
      ->check(CLI::ExistingFile)
      ->excludes(init);
  cmd->add_option("--out", o.out,
                  "Write the trained model here: a complete checkpoint (safetensors, atomic); "
                  "with --resume the default is the resumed file");
  cmd->add_option("--checkpoint-every", o.checkpoint_every,
                  "Also write a checkpoint every N epochs (next to --out, or in "
                  "--checkpoint-dir); Nsteps: every N minibatch steps, Ns / Nm / Nh: every N "
                  "seconds / minutes / hours, inside epochs too")
      ->check([](const std::string& text) {
        try {
          parse_checkpoint_interval(text);
          return std::string();
        } catch (const std::exception& e) {
          return std::string(e.what());
        }
      });
  cmd->add_option("--checkpoint-dir", o.checkpoint_dir, "Directory for periodic checkpoints");
  cmd->add_option("--keep", o.keep, "Periodic checkpoints to keep (the newest)")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--max-memory", o.max_memory,
                  "Refuse to start a run whose estimated memory (model, optimizer, gradient "
                  "buffers, workspaces, data in memory) exceeds this, e.g. 8G or 512M; runs "
                  "that exceed the available memory are always refused")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            try {
              parse_memory_size(value);
            } catch (const Error& e) {
              return e.what();
            }
            return {};
          },
          "SIZE"));
  cmd->add_option("--metrics", o.metrics, "Append one JSON line per epoch to this file");
  auto* quiet = cmd->add_flag("--quiet,-q", o.quiet, "Print nothing but errors");
  cmd->add_flag("--verbose,-v", o.verbose, "Also print the learning rate, gradient norm and files")
      ->excludes(quiet);
  cmd->add_option("--config", o.config,
                  "Read options from this file (TOML or INI: `lr = 0.05`, keys are the long "
                  "option names, optionally in a [train] section; the command line wins)")
      ->check(CLI::ExistingFile);
  return cmd;
}

namespace {

// One stored setting: its option name, how to read and write it, and whether a resumed run may
// give it a new value.
struct StoredField {
  std::string option;
  std::function<nlohmann::json(const TrainOptions&)> get;
  std::function<void(TrainOptions&, const nlohmann::json&)> set;
  bool may_change = false;
  // The value a checkpoint that does not record the option stands for (none: it must record it).
  std::optional<nlohmann::json> when_absent;
};

template <class T>
StoredField field(const char* option, T TrainOptions::*member, bool may_change = false) {
  return {option,
          [member](const TrainOptions& o) {
            if constexpr (std::is_same_v<T, float>) return nlohmann::json(json_float(o.*member));
            return nlohmann::json(o.*member);
          },
          [member](TrainOptions& o, const nlohmann::json& j) { o.*member = j.get<T>(); },
          may_change, std::nullopt};
}

StoredField with_default(StoredField f, nlohmann::json when_absent) {
  f.when_absent = std::move(when_absent);
  return f;
}

const std::vector<StoredField>& stored_fields() {
  static const std::vector<StoredField> fields = {
      field("--data", &TrainOptions::data, true),
      field("--val", &TrainOptions::validation, true),
      field("--val-split", &TrainOptions::validation_split),
      field("--target", &TrainOptions::targets),
      field("--ignore", &TrainOptions::ignore),
      // Runs recorded before these options had no categorical columns.
      with_default(field("--categorical", &TrainOptions::categorical), nlohmann::json::array()),
      with_default(field("--max-categories", &TrainOptions::max_categories), 1000),
      field("--delimiter", &TrainOptions::delimiter),
      field("--no-header", &TrainOptions::no_header),
      // Checkpoints without them read files with no preamble and no comments.
      with_default(field("--skip-rows", &TrainOptions::skip_rows), 0),
      with_default(field("--comment", &TrainOptions::comment), ""),
      // Checkpoints without them read the default tokens and stopped at a missing value.
      with_default(field("--na-values", &TrainOptions::na_values),
                   nlohmann::json(CsvOptions{}.na_values)),
      with_default(field("--missing", &TrainOptions::missing), "error"),
      field("--no-standardize", &TrainOptions::no_standardize),
      // Checkpoints without it evaluated the training set after every epoch.
      with_default(field("--eval-train", &TrainOptions::eval_train), true),
      field("--stream", &TrainOptions::stream),
      field("--shuffle-buffer-mb", &TrainOptions::shuffle_buffer_mb),
      field("--spec", &TrainOptions::spec),
      field("--layers", &TrainOptions::layers),
      field("--activation", &TrainOptions::activation),
      field("--batch-norm", &TrainOptions::batch_norm),
      field("--dropout", &TrainOptions::dropout),
      field("--loss", &TrainOptions::loss),
      field("--epochs", &TrainOptions::epochs, true),
      field("--batch-size", &TrainOptions::batch_size),
      field("--lr", &TrainOptions::learning_rate),
      field("--weight-decay", &TrainOptions::weight_decay),
      field("--optimizer", &TrainOptions::optimizer),
      field("--momentum", &TrainOptions::momentum),
      field("--nesterov", &TrainOptions::nesterov),
      field("--lr-schedule", &TrainOptions::lr_schedule),
      field("--lr-step-epochs", &TrainOptions::lr_step_epochs),
      field("--lr-gamma", &TrainOptions::lr_gamma),
      field("--lr-cosine-epochs", &TrainOptions::lr_cosine_epochs),
      field("--clip-grad-norm", &TrainOptions::clip_grad_norm),
      field("--early-stopping", &TrainOptions::early_stopping),
      field("--restarts", &TrainOptions::restarts),
      field("--shards", &TrainOptions::shards),
      field("--seed", &TrainOptions::seed),
      field("--no-shuffle", &TrainOptions::no_shuffle),
      field("--init", &TrainOptions::init),
  };
  return fields;
}

// Floats are stored as doubles; show them as the float the user typed.
std::string shown(const nlohmann::json& value) {
  if (!value.is_number_float()) return value.dump();
  char text[32];
  std::snprintf(text, sizeof text, "%.7g", value.get<double>());
  return text;
}

}  // namespace

nlohmann::json to_json(const TrainOptions& options) {
  nlohmann::json j = nlohmann::json::object();
  for (const StoredField& f : stored_fields()) j[f.option.substr(2)] = f.get(options);
  return j;
}

void apply_stored_options(TrainOptions& options, const nlohmann::json& stored,
                          const CLI::App& command, const std::string& file) {
  if (!stored.is_object()) throw Error(file + ": metadata 'shardprop.train_options' is malformed");
  for (const StoredField& f : stored_fields()) {
    const std::string key = f.option.substr(2);
    if (!stored.contains(key) && !f.when_absent) {
      throw Error(file + ": metadata 'shardprop.train_options' does not record " + f.option);
    }
    const nlohmann::json& value = stored.contains(key) ? stored[key] : *f.when_absent;
    const bool given = command.count(f.option) > 0;
    if (given && f.may_change) continue;
    if (given && f.option == "--init") continue;  // excluded by --resume already
    TrainOptions parsed = options;
    try {
      f.set(parsed, value);
    } catch (const nlohmann::json::exception&) {
      throw Error(file + ": metadata 'shardprop.train_options': " + f.option + " is malformed");
    }
    if (given && f.get(parsed) != f.get(options)) {
      throw Error(f.option + " " + shown(f.get(options)) + " differs from the " + shown(value) +
                  " the checkpoint " + file +
                  " was trained with; a resumed run keeps its settings (only --epochs, the data "
                  "files and output options may change)");
    }
    options = parsed;
  }
}

namespace {

// The 1-based line of `file` that sets `key` (in `section`, "" before any section), or 0.
// CLI11's config items do not say where they came from; messages name the line.
int config_line(const std::string& file, const std::string& section, const std::string& key) {
  std::ifstream in(file);
  std::string current;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const std::string text = trim_copy(line);
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
      current = trim_copy(text.substr(1, text.size() - 2));
      continue;
    }
    if (current != section) continue;
    const std::string name = trim_copy(text.substr(0, text.find_first_of("=:")));
    if (name == key || name == "\"" + key + "\"" || name == "'" + key + "'") return number;
  }
  return 0;
}

// true/false as TOML writes them, and the spellings CLI11 and INI files use.
std::optional<bool> flag_value(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  return std::nullopt;
}

}  // namespace

std::vector<std::string> config_arguments(const CLI::App& command, const std::string& file) {
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(file);
  } catch (const CLI::Error& e) {
    throw Error(file + ": " + e.what());
  }
  std::vector<std::string> args;
  for (const CLI::ConfigItem& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    const std::string section = item.parents.empty() ? "" : item.parents[0];
    auto where = [&] {
      const int line = config_line(file, section, item.name);
      return line > 0 ? file + ":" + std::to_string(line) : file;
    };
    if (!(item.parents.empty() || (item.parents.size() == 1 && item.parents[0] == "train"))) {
      throw UsageError(file + ": section [" + item.parents[0] +
                       "] is not a section of `shardprop train` (use [train] or none)");
    }
    const std::string option = "--" + item.name;
    const CLI::Option* opt = nullptr;
    try {
      opt = command.get_option(option);
    } catch (const CLI::OptionNotFound&) {
      throw UsageError(where() + ": unknown option '" + item.name + "'");
    }
    if (item.name == "config") throw UsageError(where() + ": a config file cannot name another");
    if (opt->count() > 0) continue;      // given on the command line: it wins
    if (opt->get_expected_max() == 0) {  // a flag: `key`, `key = true`, `key = false`, ...
      const std::string value = item.inputs.empty() ? "true" : item.inputs.front();
      const std::optional<bool> on = item.inputs.size() <= 1 ? flag_value(value) : std::nullopt;
      if (!on) {
        throw UsageError(where() + ": '" + item.name +
                         "' is a flag: true/false (or 1/0, yes/no, on/off), got '" + value + "'");
      }
      if (*on) args.push_back(option);
      continue;
    }
    std::string joined;
    for (const std::string& input : item.inputs) joined += (joined.empty() ? "" : ",") + input;
    args.push_back(option);
    args.push_back(joined);
  }
  return args;
}

CheckpointInterval parse_checkpoint_interval(const std::string& text) {
  std::int64_t count = 0;
  const char* end = text.data() + text.size();
  const auto [unit, error] = std::from_chars(text.data(), end, count);
  const std::string suffix(unit, end);
  const bool known = suffix.empty() || suffix == "epochs" || suffix == "steps" || suffix == "s" ||
                     suffix == "m" || suffix == "h";
  if (error != std::errc() || count < 0 || !known ||
      ((suffix.empty() || suffix == "epochs") && count > std::numeric_limits<int>::max())) {
    throw UsageError("--checkpoint-every '" + text +
                     "': expected N or Nepochs (epochs), Nsteps (minibatch steps), or Ns, Nm, Nh "
                     "(seconds, minutes, hours), N a whole number");
  }
  CheckpointInterval interval;
  if (suffix.empty() || suffix == "epochs") {
    interval.epochs = static_cast<int>(count);
  } else if (suffix == "steps") {
    interval.steps = count;
  } else {
    const double unit_seconds = suffix == "s" ? 1.0 : suffix == "m" ? 60.0 : 3600.0;
    interval.seconds = static_cast<double>(count) * unit_seconds;
  }
  return interval;
}

}  // namespace shardprop::cli
