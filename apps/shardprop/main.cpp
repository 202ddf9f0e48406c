// The shardprop executable: parses the command line and hands each subcommand to its file.
// Exit status: 0 success, 1 bad input or I/O failure (one line on stderr), 2 usage error,
// 3 internal error.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "evaluate_command.hpp"
#include "info_command.hpp"
#include "predict_command.hpp"
#include "shardprop/error.hpp"
#include "shardprop/version.hpp"
#include "train_command.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shardprop: data-parallel CPU trainer for fully connected networks"};
  app.set_version_flag("--version", shardprop::version());
  app.require_subcommand(1);
  shardprop::cli::TrainOptions train_options;
  CLI::App* train = shardprop::cli::add_train_command(app, train_options);
  shardprop::cli::InfoOptions info_options;
  CLI::App* info = shardprop::cli::add_info_command(app, info_options);
  shardprop::cli::EvaluateOptions evaluate_options;
  CLI::App* evaluate = shardprop::cli::add_evaluate_command(app, evaluate_options);
  shardprop::cli::PredictOptions predict_options;
  CLI::App* predict = shardprop::cli::add_predict_command(app, predict_options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints the message (or the help); its many codes collapse to the documented 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (train->parsed()) return shardprop::cli::run_train(train_options);
    if (info->parsed()) return shardprop::cli::run_info(info_options);
    if (evaluate->parsed()) return shardprop::cli::run_evaluate(evaluate_options);
    if (predict->parsed()) return shardprop::cli::run_predict(predict_options);
  } catch (const shardprop::Error& e) {
    std::fprintf(stderr, "shardprop: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardprop: internal error: %s\n", e.what());
    return 3;
  }
  return 0;
}
