// `shardprop train`. No mathematics here: everything goes through the public API.
#include "train_command.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "shardprop/checkpoint.hpp"
#include "shardprop/data_stream.hpp"
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

namespace {

// What training reads: in memory, or streamed block by block.
struct TrainingData {
  Dataset shape;  // names, feature count, target width, class names (rows: in memory only)
  std::optional<Dataset> train, validation;
  std::unique_ptr<CsvStream> train_stream, validation_stream;
  Standardization standardization;
  bool streaming() const { return train_stream != nullptr; }
};

bool should_stream(const TrainOptions& o) {
  if (o.stream) return true;
  double threshold_mb = o.stream_above_mb;
  if (threshold_mb <= 0.0) {
    const double pages = static_cast<double>(::sysconf(_SC_PHYS_PAGES));
    const double page_size = static_cast<double>(::sysconf(_SC_PAGESIZE));
    threshold_mb = pages * page_size / 4.0 / (1024.0 * 1024.0);
  }
  return static_cast<double>(std::filesystem::file_size(o.data)) / (1024.0 * 1024.0) > threshold_mb;
}

void check_shape(const Dataset& other, const Dataset& shape, const std::string& file) {
  if (other.feature_count != shape.feature_count || other.target_width != shape.target_width) {
    throw Error(file + ": " + std::to_string(other.feature_count) + " features and " +
                std::to_string(other.target_width) + " targets, the training data has " +
                std::to_string(shape.feature_count) + " and " + std::to_string(shape.target_width));
  }
}

TrainingData load_in_memory(const TrainOptions& o, const CsvOptions& csv, Loss loss) {
  TrainingData d;
  const bool cached = o.cache || !o.cache_dir.empty();
  auto load = [&](const std::string& file) {
    return cached ? read_csv_cached(file, csv, o.cache_dir) : read_csv(file, csv);
  };
  d.train = load(o.data);
  if (d.train->rows == 0) throw Error(o.data + ": no data rows");
  if (!o.validation.empty()) {
    d.validation = load(o.validation);
    check_shape(*d.validation, *d.train, o.validation);
    if (loss == Loss::xent) use_class_names(*d.validation, d.train->class_names);
  } else if (o.validation_split > 0.0) {
    auto [train_part, validation_part] = split_validation(*d.train, o.validation_split, o.seed);
    d.train = std::move(train_part);
    d.validation = std::move(validation_part);
  }
  if (!o.no_standardize) {
    d.standardization = Standardization::fit(*d.train);
    d.standardization.apply(*d.train);
    if (d.validation) d.standardization.apply(*d.validation);
  }
  d.shape = *d.train;
  return d;
}

TrainingData load_streaming(const TrainOptions& o, const CsvOptions& csv, Loss loss) {
  if (o.validation_split > 0.0) {
    throw Error("--val-split needs the data in memory; with --stream give a --val file");
  }
  if (o.cache || !o.cache_dir.empty()) {
    throw Error("--cache keeps a parsed copy of files that fit in memory; not with --stream");
  }
  TrainingData d;
  // Labels are sorted over the whole file, so a first pass collects them.
  std::vector<std::string> classes;
  if (loss == Loss::xent) classes = collect_class_names(o.data, csv);
  d.train_stream = std::make_unique<CsvStream>(o.data, csv, classes);
  if (!o.no_standardize) {
    d.standardization = Standardization::fit(*d.train_stream);
    d.train_stream->set_standardization(d.standardization);
  }
  if (!d.train_stream->next(d.shape)) throw Error(o.data + ": no data rows");
  d.train_stream->rewind();
  d.shape.class_names = classes;
  if (!o.validation.empty()) {
    d.validation_stream = std::make_unique<CsvStream>(o.validation, csv, classes);
    Dataset first;
    if (d.validation_stream->next(first)) check_shape(first, d.shape, o.validation);
    d.validation_stream->rewind();
    if (!d.standardization.empty()) d.validation_stream->set_standardization(d.standardization);
  }
  return d;
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
  TrainingData data =
      should_stream(o) ? load_streaming(o, csv, loss) : load_in_memory(o, csv, loss);
  const Dataset& shape = data.shape;
  int outputs = shape.target_width;
  if (loss == Loss::xent) {
    outputs = shape.class_count();
    if (outputs < 2) {
      throw Error(o.data + ": the target has a single class ('" + shape.class_names.front() +
                  "'); xent needs at least 2");
    }
  }
  Model model(ModelSpec::mlp(shape.feature_count, o.layers, outputs, parse_activation(o.activation),
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
  settings.shuffle_buffer_bytes = static_cast<std::size_t>(o.shuffle_buffer_mb * 1024 * 1024);
  Trainer trainer(model, settings);

  std::printf("shardprop %s | %s: ", version().c_str(), o.data.c_str());
  if (data.streaming()) {
    std::printf("streamed");
  } else {
    std::printf("%lld rows", static_cast<long long>(shape.rows));
  }
  std::printf(", %d features | model %d", shape.feature_count, shape.feature_count);
  for (int width : o.layers) std::printf("-%d", width);
  std::printf("-%d %s%s, loss %s | batch %d, shards %d, BLAS core %s\n", outputs,
              o.activation.c_str(), o.batch_norm ? " + batch norm" : "", o.loss.c_str(),
              o.batch_size, trainer.shard_count(), blas_core_name().c_str());
  const bool has_validation = data.validation || data.validation_stream;
  auto train_epoch = [&] {
    try {
      return data.streaming() ? trainer.train_epoch(*data.train_stream)
                              : trainer.train_epoch(*data.train);
    } catch (const Error& e) {
      throw Error(o.data + ": " + e.what());
    }
  };
  // Without a validation set, the quality on the training data after the epoch.
  auto evaluate = [&] {
    if (data.validation_stream) return trainer.evaluate(*data.validation_stream);
    if (data.validation) return trainer.evaluate(*data.validation);
    return data.streaming() ? trainer.evaluate(*data.train_stream) : trainer.evaluate(*data.train);
  };
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    const Metrics train = train_epoch();
    const double seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    if (!std::isfinite(train.loss)) {
      throw Error("epoch " + std::to_string(epoch) +
                  ": the loss is not finite (try a smaller --lr); no weights written");
    }
    std::printf("epoch %4d/%d  loss %.6f", epoch, o.epochs, train.loss);
    const Metrics eval = evaluate();
    const char* prefix = has_validation ? "val " : "";
    if (has_validation) std::printf("  val loss %.6f", eval.loss);
    if (loss == Loss::mse) {
      std::printf("  %srmse %.6f", prefix, eval.rmse);
    } else {
      std::printf("  %saccuracy %6.2f%%", prefix, 100.0 * eval.accuracy);
    }
    std::printf("  %.0f samples/s  %.2f s\n", static_cast<double>(train.rows) / seconds,
                std::chrono::duration<double>(Clock::now() - start).count());
    std::fflush(stdout);
  }
  if (!o.out.empty()) {
    std::map<std::string, std::string> metadata{
        {"shardprop.data", o.data},
        {"shardprop.epochs", std::to_string(trainer.epochs_completed())},
        {"shardprop.seed", std::to_string(o.seed)},
        {"shardprop.features", nlohmann::json(shape.feature_names).dump()},
        {"shardprop.targets", nlohmann::json(shape.target_names).dump()}};
    if (!shape.class_names.empty()) {
      metadata["shardprop.classes"] = nlohmann::json(shape.class_names).dump();
    }
    if (!data.standardization.empty()) {
      metadata["shardprop.standardization"] = nlohmann::json{
          {"mean", data.standardization.mean},
          {"scale", data.standardization.scale}}.dump();
    }
    save_safetensors(model, o.out, metadata);
    std::printf("wrote %s\n", o.out.c_str());
  }
  return 0;
}

}  // namespace shardprop::cli
