// The shardprop executable: parses the command line and hands each subcommand to its file.
// Exit status: 0 success, 1 bad input or I/O failure (one line on stderr), 2 usage error,
// 3 internal error.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "evaluate_command.hpp"
#include "info_command.hpp"
#include "predict_command.hpp"
#include "shardprop/error.hpp"
#include "shardprop/version.hpp"
#include "train_command.hpp"
#include "usage_error.hpp"

namespace {

// Every subcommand's options and the parser that fills them.
struct CommandLine {
  CLI::App app{"shardprop: data-parallel CPU trainer for fully connected networks"};
  shardprop::cli::TrainOptions train_options;
  CLI::App* train = nullptr;
  shardprop::cli::InfoOptions info_options;
  CLI::App* info = nullptr;
  shardprop::cli::EvaluateOptions evaluate_options;
  CLI::App* evaluate = nullptr;
  shardprop::cli::PredictOptions predict_options;
  CLI::App* predict = nullptr;

  CommandLine() {
    app.set_version_flag("--version", shardprop::version());
    app.require_subcommand(1);
    train = shardprop::cli::add_train_command(app, train_options);
    evaluate = shardprop::cli::add_evaluate_command(app, evaluate_options);
    predict = shardprop::cli::add_predict_command(app, predict_options);
    info = shardprop::cli::add_info_command(app, info_options);
  }
};

int run(CommandLine& line) {
  if (line.train->parsed()) return shardprop::cli::run_train(line.train_options, *line.train);
  if (line.info->parsed()) return shardprop::cli::run_info(line.info_options);
  if (line.evaluate->parsed()) return shardprop::cli::run_evaluate(line.evaluate_options);
  if (line.predict->parsed()) return shardprop::cli::run_predict(line.predict_options);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto line = std::make_unique<CommandLine>();
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    try {
      line->app.parse(std::vector<std::string>(args.rbegin(), args.rend()));
      // A config file adds the arguments it stands for; then the whole line is parsed again.
      if (line->train->parsed() && !line->train_options.config.empty()) {
        const std::vector<std::string> extra =
            shardprop::cli::config_arguments(*line->train, line->train_options.config);
        args.insert(args.end(), extra.begin(), extra.end());
        line = std::make_unique<CommandLine>();
        line->app.parse(std::vector<std::string>(args.rbegin(), args.rend()));
      }
    } catch (const CLI::ParseError& e) {
      // CLI11 prints the message (or the help); its many codes collapse to the documented 2.
      return line->app.exit(e) == 0 ? 0 : 2;
    }
    return run(*line);
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
}
