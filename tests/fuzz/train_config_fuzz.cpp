// `shardprop train --config FILE` on an arbitrary file, parsed as the executable parses it
// (apps/shardprop/main.cpp): the command line, then the arguments config_arguments makes of the
// file, then the whole line again. The outcomes a user may see are a parsed command, a
// UsageError, a shardprop::Error or a CLI11 parse error; any other exception is a bug.
#include <CLI/CLI.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "shardprop/error.hpp"
#include "train_options.hpp"
#include "usage_error.hpp"

using namespace shardprop;

namespace {

// The train command's parser, as main.cpp makes it.
struct TrainCommandLine {
  CLI::App app{"shardprop"};
  cli::TrainOptions options;
  CLI::App* train = nullptr;

  TrainCommandLine() {
    app.require_subcommand(1);
    train = cli::add_train_command(app, options);
  }

  void parse(const std::vector<std::string>& args) {
    app.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 wants them reversed
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::ScratchFile scratch("train_config");
  const std::string path = scratch.write({data, size}).string();
  try {
    std::vector<std::string> args{"train", "--config", path};
    auto line = std::make_unique<TrainCommandLine>();
    line->parse(args);
    const std::vector<std::string> extra = cli::config_arguments(*line->train, path);
    args.insert(args.end(), extra.begin(), extra.end());
    line = std::make_unique<TrainCommandLine>();
    line->parse(args);
    FUZZ_CHECK(line->train->parsed(), "the train command was not parsed");
    // What a checkpoint stores of the options (must be a JSON object, whatever was parsed).
    FUZZ_CHECK(cli::to_json(line->options).is_object(), "stored options are not an object");
  } catch (const CLI::ParseError&) {
    // CLI11's usage errors: exit status 2.
  } catch (const cli::UsageError&) {
  } catch (const Error&) {
  } catch (const std::exception& e) {
    fuzz::fail_unexpected(e);
  }
  return 0;
}
