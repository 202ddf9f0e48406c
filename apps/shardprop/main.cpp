// The shardprop executable: parses the command line and hands each subcommand to its file.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "shardprop/error.hpp"
#include "shardprop/version.hpp"
#include "train_command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shardprop: data-parallel CPU trainer for fully connected networks"};
  app.set_version_flag("--version", shardprop::version());
  app.require_subcommand(1);
  shardprop::cli::TrainOptions train_options;
  CLI::App* train = shardprop::cli::add_train_command(app, train_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);  // usage errors exit with CLI11's codes (non-zero), help with 0
  }
  try {
    if (train->parsed()) return shardprop::cli::run_train(train_options);
  } catch (const shardprop::Error& e) {
    std::fprintf(stderr, "shardprop: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardprop: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
