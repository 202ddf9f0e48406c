// Dataset validation and row access.
#include "shardprop/dataset.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "shardprop/error.hpp"

namespace shardprop {

void Dataset::validate() const {
  if (rows < 0 || feature_count < 1 || target_width < 1) {
    throw Error("dataset: rows (" + std::to_string(rows) + "), feature count (" +
                std::to_string(feature_count) + ") and target width (" +
                std::to_string(target_width) + ") must be positive");
  }
  if (features.size() != static_cast<std::size_t>(rows) * feature_count) {
    throw Error("dataset: " + std::to_string(rows) + " rows of " + std::to_string(feature_count) +
                " features need " + std::to_string(rows * feature_count) + " values, have " +
                std::to_string(features.size()));
  }
  if (targets.size() != static_cast<std::size_t>(rows) * target_width) {
    throw Error("dataset: " + std::to_string(rows) + " rows of " + std::to_string(target_width) +
                " targets need " + std::to_string(rows * target_width) + " values, have " +
                std::to_string(targets.size()));
  }
  for (std::size_t i = 0; i < features.size(); ++i) {
    if (!std::isfinite(features[i])) {
      throw Error("dataset: feature " + std::to_string(i % feature_count) + " of row " +
                  std::to_string(i / feature_count) + " is not finite");
    }
  }
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (!std::isfinite(targets[i])) {
      throw Error("dataset: target " + std::to_string(i % target_width) + " of row " +
                  std::to_string(i / target_width) + " is not finite");
    }
  }
}

std::span<const float> Dataset::row_features(std::int64_t row) const {
  return {features.data() + row * feature_count, static_cast<std::size_t>(feature_count)};
}

std::span<const float> Dataset::row_targets(std::int64_t row) const {
  return {targets.data() + row * target_width, static_cast<std::size_t>(target_width)};
}

int Dataset::class_count() const {
  if (targets.empty()) return 0;
  return static_cast<int>(*std::max_element(targets.begin(), targets.end())) + 1;
}

}  // namespace shardprop
