// `shardprop train`. No mathematics here: everything goes through the public API.
#include "train_command.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "shardprop/checkpoint.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"

namespace shardprop::cli {
namespace {

// CLI11's PositiveNumber prints its range as 0 to 1.8e308 in full; say the rule instead.
CLI::Validator at_least(double minimum) {
  return CLI::Validator(
      [minimum](std::string& value) -> std::string {
        double number = 0.0;
        if (!CLI::detail::lexical_cast(value, number) || !(number >= minimum)) {
          return "must be a number >= " + CLI::detail::to_string(minimum) + ", got '" + value + "'";
        }
        return {};
      },
      ">=" + CLI::detail::to_string(minimum));
}

}  // namespace

CLI::App* add_train_command(CLI::App& app, TrainOptions& o) {
  CLI::App* cmd = app.add_subcommand("train", "Train a network on a CSV file");
  cmd->add_option("--data", o.data, "Training CSV (RFC 4180; numeric features; see docs/csv.md)")
      ->required()
      ->check(CLI::ExistingFile);
  auto* val = cmd->add_option("--val", o.validation,
                              "Validation CSV (same columns); reported after every epoch")
                  ->check(CLI::ExistingFile);
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
  cmd->add_option("--delimiter", o.delimiter, "Field delimiter: one character, or 'tab'")
      ->capture_default_str();
  cmd->add_flag("--no-header", o.no_header, "The first line is data; columns are named 0, 1, ...");
  cmd->add_flag("--cache", o.cache,
                "Keep a binary copy of each parsed CSV next to it (.NAME.HASH.spcache) and reuse "
                "it while the CSV and the parse options are unchanged");
  cmd->add_option("--cache-dir", o.cache_dir,
                  "Like --cache, with the cache files in this directory");
  cmd->add_flag("--no-standardize", o.no_standardize,
                "Keep features as they are (default: z-score with statistics of the training "
                "data, stored in --out)");
  cmd->add_option("--layers", o.layers, "Hidden layer widths, e.g. 16,16 (empty: none)")
      ->delimiter(',')
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--activation", o.activation, "Hidden activation")
      ->check(CLI::IsMember({"sigmoid", "tanh", "relu", "identity"}))
      ->capture_default_str();
  cmd->add_option("--loss", o.loss,
                  "mse (regression), xent (classes 0..K-1, softmax), bce (0/1 target, sigmoid)")
      ->check(CLI::IsMember({"mse", "xent", "bce"}))
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
                "(statistics over the whole minibatch, however it is sharded)");
  cmd->add_option("--init", o.init, "Start from these weights (safetensors) instead of random ones")
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o.out, "Write the trained weights here (safetensors, atomic)");
  return cmd;
}

namespace {

char parse_delimiter(const std::string& text) {
  if (text == "tab" || text == "\\t") return '\t';
  if (text.size() != 1 || text == "\"" || text == "\n" || text == "\r") {
    throw Error("--delimiter must be one character other than a quote or a line break, got '" +
                text + "'");
  }
  return text.front();
}

}  // namespace

int run_train(const TrainOptions& o) {
  const Loss loss = parse_loss(o.loss);
  CsvOptions csv;
  csv.targets = o.targets;
  csv.ignore = o.ignore;
  csv.header = !o.no_header;
  csv.delimiter = parse_delimiter(o.delimiter);
  // xent learns classes: labels (strings or numbers) become class indices in sorted order.
  csv.target_kind = loss == Loss::xent ? TargetKind::classes : TargetKind::numeric;
  const bool cached = o.cache || !o.cache_dir.empty();
  auto load = [&](const std::string& file) {
    return cached ? read_csv_cached(file, csv, o.cache_dir) : read_csv(file, csv);
  };
  Dataset data = load(o.data);
  if (data.rows == 0) throw Error(o.data + ": no data rows");
  std::optional<Dataset> validation;
  if (!o.validation.empty()) {
    validation = load(o.validation);
    if (validation->feature_count != data.feature_count ||
        validation->target_width != data.target_width) {
      throw Error(o.validation + ": " + std::to_string(validation->feature_count) +
                  " features and " + std::to_string(validation->target_width) +
                  " targets, the training data has " + std::to_string(data.feature_count) +
                  " and " + std::to_string(data.target_width));
    }
    if (loss == Loss::xent) use_class_names(*validation, data.class_names);
  } else if (o.validation_split > 0.0) {
    auto [train_part, validation_part] = split_validation(data, o.validation_split, o.seed);
    data = std::move(train_part);
    validation = std::move(validation_part);
  }
  Standardization standardization;
  if (!o.no_standardize) {
    standardization = Standardization::fit(data);
    standardization.apply(data);
    if (validation) standardization.apply(*validation);
  }
  int outputs = data.target_width;
  if (loss == Loss::xent) {
    outputs = data.class_count();
    if (outputs < 2) {
      throw Error(o.data + ": the target has a single class ('" + data.class_names.front() +
                  "'); xent needs at least 2");
    }
  }
  if (loss == Loss::bce) {
    for (std::int64_t r = 0; r < data.rows; ++r) {
      if (data.targets[r] != 0.0f && data.targets[r] != 1.0f) {
        throw Error(o.data + ": row " + std::to_string(r + 1) + ": bce needs targets 0 or 1, got " +
                    std::to_string(data.targets[r]));
      }
    }
  }
  Model model(ModelSpec::mlp(data.feature_count, o.layers, outputs, parse_activation(o.activation),
                             loss, o.batch_norm));
  if (o.init.empty()) {
    model.initialize(o.seed);
  } else {
    load_safetensors(model, o.init);
  }

  TrainerSettings settings;
  settings.threads = o.threads;
  settings.shards = o.shards;
  settings.batch_size = o.batch_size;
  settings.learning_rate = o.learning_rate;
  settings.weight_decay = o.weight_decay;
  settings.seed = o.seed;
  settings.shuffle = !o.no_shuffle;
  Trainer trainer(model, settings);

  std::printf("shardprop %s | %s: %lld rows, %d features | model %d", version().c_str(),
              o.data.c_str(), static_cast<long long>(data.rows), data.feature_count,
              data.feature_count);
  for (int width : o.layers) std::printf("-%d", width);
  std::printf("-%d %s%s, loss %s | batch %d, shards %d, BLAS core %s\n", outputs,
              o.activation.c_str(), o.batch_norm ? " + batch norm" : "", o.loss.c_str(),
              o.batch_size, trainer.shard_count(), blas_core_name().c_str());
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const Metrics train = trainer.train_epoch(data);
    const double seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    if (!std::isfinite(train.loss)) {
      throw Error("epoch " + std::to_string(epoch) +
                  ": the loss is not finite (try a smaller --lr); no weights written");
    }
    std::printf("epoch %4d/%d  loss %.6f", epoch, o.epochs, train.loss);
    // Without a validation set, the quality on the training data after the epoch.
    const Metrics eval = trainer.evaluate(validation ? *validation : data);
    const char* prefix = validation ? "val " : "";
    if (validation) std::printf("  val loss %.6f", eval.loss);
    if (loss == Loss::mse) {
      std::printf("  %srmse %.6f", prefix, eval.rmse);
    } else {
      std::printf("  %saccuracy %6.2f%%", prefix, 100.0 * eval.accuracy);
    }
    std::printf("  %.0f samples/s  %.2f s\n", static_cast<double>(data.rows) / seconds,
                std::chrono::duration<double>(Clock::now() - start).count());
    std::fflush(stdout);
  }
  if (!o.out.empty()) {
    std::map<std::string, std::string> metadata{
        {"shardprop.data", o.data},
        {"shardprop.epochs", std::to_string(trainer.epochs_completed())},
        {"shardprop.seed", std::to_string(o.seed)},
        {"shardprop.features", nlohmann::json(data.feature_names).dump()},
        {"shardprop.targets", nlohmann::json(data.target_names).dump()}};
    if (!data.class_names.empty()) {
      metadata["shardprop.classes"] = nlohmann::json(data.class_names).dump();
    }
    if (!standardization.empty()) {
      metadata["shardprop.standardization"] =
          nlohmann::json{{"mean", standardization.mean}, {"scale", standardization.scale}}.dump();
    }
    save_safetensors(model, o.out, metadata);
    std::printf("wrote %s\n", o.out.c_str());
  }
  return 0;
}

}  // namespace shardprop::cli
