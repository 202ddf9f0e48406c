// `shardprop evaluate`: the quality of a trained model on a labelled CSV, as a table or JSON.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shardprop::cli {

struct EvaluateOptions {
  std::string model;
  std::string data;
  std::vector<std::string> targets;  // empty: the model's recorded target columns
  std::string delimiter = ",";
  bool no_header = false;
  std::int64_t skip_rows = 0;
  std::string comment;
  // --na-values: these texts are missing values instead of the model's (none: the model's).
  std::optional<std::vector<std::string>> na_values;
  int threads = 0;
  bool json = false;
};

CLI::App* add_evaluate_command(CLI::App& app, EvaluateOptions& options);
int run_evaluate(const EvaluateOptions& options);

}  // namespace shardprop::cli
