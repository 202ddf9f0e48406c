// `shardprop train`: read a CSV, build the model, train with progress, checkpoints and
// restarts, and write a complete checkpoint.
#pragma once

#include <CLI/CLI.hpp>

#include "train_options.hpp"

namespace shardprop::cli {

// `command` is the parsed train subcommand: --resume needs to know which options were given.
int run_train(TrainOptions options, const CLI::App& command);

}  // namespace shardprop::cli
