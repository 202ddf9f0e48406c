// `shardprop train`: read a CSV, build the model, train with progress, checkpoints and
// restarts, and write a complete checkpoint.
#pragma once

#include <CLI/CLI.hpp>

#include "shardprop/communicator.hpp"
#include "train_options.hpp"

namespace shardprop::cli {

// `command` is the parsed train subcommand: --resume needs to know which options were given.
// `comm`: the ranks of an MPI launch (each runs this with the same options), or this process
// alone. Only rank 0 prints and writes files.
int run_train(TrainOptions options, const CLI::App& command, const Communicator& comm);

}  // namespace shardprop::cli
