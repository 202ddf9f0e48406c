// `shardprop inspect FILE.csv`: what a CSV file holds, column by column, before choosing the
// options to train on it.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace shardprop::cli {

struct InspectOptions {
  std::string data;
  std::string delimiter = ",";
  bool no_header = false;
  std::int64_t skip_rows = 0;
  std::string comment;
  std::vector<std::string> targets;
  std::string na_values;  // comma-separated; unset: the library's default list
  bool na_values_given = false;
  int threads = 0;
  bool json = false;
};

CLI::App* add_inspect_command(CLI::App& app, InspectOptions& options);
int run_inspect(const InspectOptions& options);

}  // namespace shardprop::cli
