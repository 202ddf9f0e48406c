// `shardprop predict`: a trained model's predictions for every row of a CSV, written atomically.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shardprop::cli {

struct PredictOptions {
  std::string model;
  std::string data;
  std::string output;
  bool probabilities = false;
  std::string delimiter = ",";
  bool no_header = false;
  std::int64_t skip_rows = 0;
  std::string comment;
  // --na-values: these texts are missing values instead of the model's (none: the model's).
  std::optional<std::vector<std::string>> na_values;
  int threads = 0;
};

CLI::App* add_predict_command(CLI::App& app, PredictOptions& options);
int run_predict(const PredictOptions& options);

}  // namespace shardprop::cli
