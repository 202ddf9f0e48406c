// Runs the real `shardprop` executable as a user would, for the CLI tests: each run is a
// separate process in a test directory with stdout and stderr captured to files.
#pragma once

#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace shardprop::test {

using Args = std::vector<std::string>;

struct Run {
  int exit_code = -1;
  std::string out, err;
};

inline std::string shell_quote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

// Runs `shardprop ARGS...` in DIR, so relative file names in ARGS are files of DIR.
inline Run run_cli(const TempDir& dir, const Args& args) {
  std::string command = "cd ";
  command += shell_quote(dir.path().string());
  command += " && ";
  command += shell_quote(SHARDPROP_CLI_PATH);
  for (const std::string& arg : args) {
    command += ' ';
    command += shell_quote(arg);
  }
  const auto out = dir / "cli.stdout";
  const auto err = dir / "cli.stderr";
  command += " >";
  command += shell_quote(out.string());
  command += " 2>";
  command += shell_quote(err.string());
  const int status = std::system(command.c_str());
  Run run;
  REQUIRE(status != -1);
  REQUIRE(WIFEXITED(status));
  run.exit_code = WEXITSTATUS(status);
  run.out = read_text(out);
  run.err = read_text(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return run;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Two classes split by the line x1 + x2 = 0.2, points at least 0.1 from it. Class indices 0/1
// for the default xent loss.
inline std::string separable_csv(std::uint64_t seed, int rows) {
  std::mt19937_64 bits(seed);
  std::string csv = "x1,x2,label\n";
  char line[96];
  for (int r = 0; r < rows;) {
    const float x1 = uniform_pm1(bits);
    const float x2 = uniform_pm1(bits);
    const double side = x1 + x2 - 0.2;
    if (side > -0.1 && side < 0.1) continue;
    std::snprintf(line, sizeof line, "%.6f,%.6f,%d\n", static_cast<double>(x1),
                  static_cast<double>(x2), side > 0 ? 1 : 0);
    csv += line;
    ++r;
  }
  return csv;
}

// `train` with `extra`, plus each (option, value) pair of `defaults` whose option `extra` does
// not give (CLI11 rejects an option given twice). --spec replaces the --layers default.
inline Args train_args(const Args& defaults, const Args& extra) {
  Args args{"train"};
  auto given = [&](const std::string& option) {
    return std::find(extra.begin(), extra.end(), option) != extra.end();
  };
  for (std::size_t i = 0; i + 1 < defaults.size(); i += 2) {
    if (given(defaults[i]) || (defaults[i] == "--layers" && given("--spec"))) continue;
    args.insert(args.end(), {defaults[i], defaults[i + 1]});
  }
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace shardprop::test
