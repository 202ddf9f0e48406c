// --skip-rows and --comment, which train, evaluate, predict and inspect share: how they are
// declared and checked, and the CsvOptions fields they set. Header-only, as train_options.cpp
// (linked into the config-file fuzz target) and the commands all use it.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "shardprop/dataset.hpp"

namespace shardprop::cli {

inline void add_preamble_options(CLI::App* cmd, std::int64_t& skip_rows, std::string& comment) {
  cmd->add_option("--skip-rows", skip_rows,
                  "Skip this many lines before the header (or the first record with "
                  "--no-header), whatever they hold; line numbers in messages still count them")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--comment", comment,
                  "Skip every line that starts with this character (e.g. '#'), before the header "
                  "or between records; not inside a quoted field")
      ->check(CLI::Validator(
          [](std::string& value) {
            if (value.size() == 1 && value != "\"" && value != "\n" && value != "\r") {
              return std::string();
            }
            return "must be one character other than a quote or a line break, got '" + value + "'";
          },
          "CHAR", "one character"));
}

inline void set_preamble_options(CsvOptions& csv, std::int64_t skip_rows,
                                 const std::string& comment) {
  csv.skip_rows = skip_rows;
  csv.comment = comment.empty() ? '\0' : comment.front();
}

}  // namespace shardprop::cli
