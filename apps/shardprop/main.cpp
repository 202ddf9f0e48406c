// The shardprop executable: parses the command line and hands each subcommand to its file.
// Exit status: 0 success, 1 bad input or I/O failure (one line on stderr), 2 usage error,
// 3 internal error.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "info_command.hpp"
#include "shardprop/error.hpp"
#include "shardprop/version.hpp"
#include "train_command.hpp"
#include "usage_error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shardprop: data-parallel CPU trainer for fully connected networks"};
  app.set_version_flag("--version", shardprop::version());
  app.require_subcommand(1);
  shardprop::cli::TrainOptions train_options;
  CLI::App* train = shardprop::cli::add_train_command(app, train_options);
  shardprop::cli::InfoOptions info_options;
  CLI::App* info = shardprop::cli::add_info_command(app, info_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints the message (or the help); its many codes collapse to the documented 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (train->parsed()) return shardprop::cli::run_train(train_options, *train);
    if (info->parsed()) return shardprop::cli::run_info(info_options);
  } catch (const shardprop::cli::UsageError& e) {
    std::fprintf(stderr, "shardprop: error: %s\nRun with --help for more information.\n", e.what());
    return 2;
  } catch (const shardprop::Error& e) {
    std::fprintf(stderr, "shardprop: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardprop: internal error: %s\n", e.what());
    return 3;
  }
  return 0;
}
