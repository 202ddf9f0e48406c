// The shardprop executable: parses the command line and hands each subcommand to its file.
// Exit status: 0 success, 1 bad input or I/O failure, 2 usage error, 3 internal error. Every
// error is one line on stderr, "shardprop: error: WHAT", usage errors followed by a hint line.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <memory>
#include <new>
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
    app.name("shardprop");
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

// One line, whatever the message holds (CLI11's and nested messages may span lines).
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

void print_error(const std::string& what) {
  std::fprintf(stderr, "shardprop: error: %s\n", one_line(what).c_str());
}

// The usage error's message, then where the options are listed.
int usage_error(const CommandLine& line, const std::string& what) {
  print_error(what);
  std::string command = "shardprop";
  for (const CLI::App* sub : {line.train, line.evaluate, line.predict, line.info}) {
    if (sub->parsed()) command += " " + sub->get_name();
  }
  std::fprintf(stderr, "Run '%s --help' for the options.\n", command.c_str());
  return 2;
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
    } catch (const CLI::Success& e) {
      return line->app.exit(e);  // --help or --version: the text on stdout, exit status 0
    } catch (const CLI::ParseError& e) {
      // CLI11's many codes collapse to the documented 2, its message to our one-line format.
      return usage_error(*line, e.what());
    }
    return run(*line);
  } catch (const shardprop::cli::UsageError& e) {
    return usage_error(*line, e.what());
  } catch (const shardprop::Error& e) {
    print_error(e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    // Sizes come from the options and the data: too large a batch, model or buffer for memory.
    print_error(
        "out of memory: the model, --batch-size or --shuffle-buffer-mb is too large for this "
        "machine");
    return 1;
  } catch (const std::exception& e) {
    print_error(std::string("internal error (a bug: please report it): ") + e.what());
    return 3;
  }
}
