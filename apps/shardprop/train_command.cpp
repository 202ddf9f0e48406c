// `shardprop train`. No mathematics here: everything goes through the public API.
#include "train_command.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <span>
#include <string>

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
  CLI::App* cmd = app.add_subcommand("train", "Train a network on a numeric CSV file");
  cmd->add_option("--data", o.data, "Training CSV (header line, numeric fields)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--target", o.target,
                  "Target column: header name or 0-based index (default: last)");
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

// Class-index targets must be non-negative integers; returns the class count.
int class_count_of(const Dataset& data, const std::string& file) {
  for (std::int64_t r = 0; r < data.rows; ++r) {
    const float t = data.targets[r];
    if (t < 0.0f || t != std::floor(t) || t > 1.0e6f) {
      throw Error(file + ": row " + std::to_string(r + 1) + " (line " + std::to_string(r + 2) +
                  "): target " + std::to_string(t) +
                  " is not a class index (xent needs integers 0..K-1; use --loss mse for "
                  "regression)");
    }
  }
  const int classes = data.class_count();
  return classes < 2 ? 2 : classes;
}

}  // namespace

int run_train(const TrainOptions& o) {
  const Dataset data = read_csv(o.data, CsvOptions{',', o.target});
  if (data.rows == 0) throw Error(o.data + ": no data rows after the header");
  const Loss loss = parse_loss(o.loss);
  int outputs = 1;
  if (loss == Loss::xent) outputs = class_count_of(data, o.data);
  if (loss == Loss::bce) {
    for (std::int64_t r = 0; r < data.rows; ++r) {
      if (data.targets[r] != 0.0f && data.targets[r] != 1.0f) {
        throw Error(o.data + ": line " + std::to_string(r + 2) +
                    ": bce needs targets 0 or 1, got " + std::to_string(data.targets[r]));
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
    const Metrics eval = trainer.evaluate(data);
    std::printf("epoch %4d/%d  loss %.6f", epoch, o.epochs, train.loss);
    if (loss == Loss::mse) {
      std::printf("  rmse %.6f", eval.rmse);
    } else {
      std::printf("  accuracy %6.2f%%", 100.0 * eval.accuracy);
    }
    std::printf("  %.0f samples/s  %.2f s\n", static_cast<double>(data.rows) / seconds,
                std::chrono::duration<double>(Clock::now() - start).count());
    std::fflush(stdout);
  }
  if (!o.out.empty()) {
    save_safetensors(model, o.out,
                     {{"shardprop.data", o.data},
                      {"shardprop.epochs", std::to_string(trainer.epochs_completed())},
                      {"shardprop.seed", std::to_string(o.seed)}});
    std::printf("wrote %s\n", o.out.c_str());
  }
  return 0;
}

}  // namespace shardprop::cli
