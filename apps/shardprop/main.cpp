// The shardprop executable: parses the command line and hands each subcommand to its file.
// Exit status: 0 success, 1 bad input or I/O failure, 2 usage error, 3 internal error, 75 `train`
// stopped by a signal after writing a checkpoint (stop_signals.hpp). Every
// error is one line on stderr, "shardprop: error: WHAT", usage errors followed by a hint line.
//
// Started by an MPI launcher (mpirun, srun), `train` runs on every rank. A failure every rank
// learns of together (CollectiveError) is printed once, by rank 0, and every rank exits with
// its status; any other failure is printed by the rank it happened on, with its number, and
// ends the whole job (MPI_Abort) so that no rank waits for it.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "evaluate_command.hpp"
#include "info_command.hpp"
#include "inspect_command.hpp"
#include "predict_command.hpp"
#include "shardprop/communicator.hpp"
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
  shardprop::cli::InspectOptions inspect_options;
  CLI::App* inspect = nullptr;
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
    inspect = shardprop::cli::add_inspect_command(app, inspect_options);
  }
};

// The ranks of an MPI launch, or this process alone.
shardprop::Communicator communicator() {
  if (!shardprop::Communicator::launched_by_mpi()) return {};
  if (!shardprop::Communicator::mpi_available()) {
    // Every rank would train the whole run alone and write the same files.
    throw shardprop::Error(
        "started by an MPI launcher, but this shardprop was built without MPI; rebuild with "
        "libopenmpi-dev installed (scripts/install-deps.sh --mpi), or run it without mpirun");
  }
  return shardprop::Communicator::mpi_world();
}

int run(CommandLine& line, shardprop::Communicator& comm) {
  if (line.train->parsed()) {
    comm = communicator();
    return shardprop::cli::run_train(line.train_options, *line.train, comm);
  }
  if (shardprop::Communicator::launched_by_mpi() && shardprop::Communicator::mpi_available() &&
      shardprop::Communicator::mpi_world().size() > 1) {
    throw shardprop::CollectiveError(
        "only 'shardprop train' runs on several ranks; run evaluate, predict, info and inspect "
        "without mpirun");
  }
  if (line.info->parsed()) return shardprop::cli::run_info(line.info_options);
  if (line.inspect->parsed()) return shardprop::cli::run_inspect(line.inspect_options);
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

// An error on this rank alone: under MPI the others cannot learn of it, so the job ends.
int rank_error(const shardprop::Communicator& comm, const std::string& what, int status) {
  if (comm.size() == 1) {
    print_error(what);
    return status;
  }
  print_error("rank " + std::to_string(comm.rank()) + ": " + what);
  std::fflush(stderr);
  comm.abort_job(status);
}

// The usage error's message, then where the options are listed.
int usage_error(const CommandLine& line, const std::string& what) {
  print_error(what);
  std::string command = "shardprop";
  for (const CLI::App* sub : {line.train, line.evaluate, line.predict, line.info, line.inspect}) {
    if (sub->parsed()) command += " " + sub->get_name();
  }
  std::fprintf(stderr, "Run '%s --help' for the options.\n", command.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  auto line = std::make_unique<CommandLine>();
  shardprop::Communicator comm;
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
    return run(*line, comm);
  } catch (const shardprop::cli::UsageError& e) {
    // Options are the same on every rank, so every rank fails alike; rank 0 says so.
    if (comm.rank() != 0) return 2;
    return usage_error(*line, e.what());
  } catch (const shardprop::CollectiveError& e) {
    if (comm.rank() == 0) print_error(e.what());
    return 1;
  } catch (const shardprop::Error& e) {
    return rank_error(comm, e.what(), 1);
  } catch (const std::bad_alloc&) {
    // Sizes come from the options and the data: too large a batch, model or buffer for memory.
    return rank_error(comm,
                      "out of memory: the model, --batch-size or --shuffle-buffer-mb is too large "
                      "for this machine",
                      1);
  } catch (const std::exception& e) {
    return rank_error(comm, std::string("internal error (a bug: please report it): ") + e.what(),
                      3);
  }
}
