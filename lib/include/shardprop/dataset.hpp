// An in-memory dataset (row-major features and targets) and a plain numeric CSV reader.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace shardprop {

// features: [rows, feature_count]; targets: [rows, target_width]. For the xent loss the single
// target column holds class indices 0..classes-1 stored as floats.
struct Dataset {
  std::int64_t rows = 0;
  int feature_count = 0;
  int target_width = 1;
  std::vector<float> features;
  std::vector<float> targets;
  std::vector<std::string> feature_names;  // may be empty
  std::string target_name;                 // may be empty

  // Throws Error when sizes disagree or a value is not finite.
  void validate() const;
  std::span<const float> row_features(std::int64_t row) const;
  std::span<const float> row_targets(std::int64_t row) const;
  // 1 + the largest target; for class-index targets.
  int class_count() const;
};

struct CsvOptions {
  char delimiter = ',';
  // Column holding the target, by header name or by 0-based index written as a number;
  // empty means the last column.
  std::string target;
};

// Reads a numeric CSV whose first line is a header. Errors name file:line:column and the
// column's header name.
Dataset read_csv(const std::filesystem::path& path, const CsvOptions& options = {});

}  // namespace shardprop
