// Building a dataset row by row from another: an empty dataset with the other's columns and
// names, and appending one of its rows. What the validation splits and split streams share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// No rows, `data`'s columns, names and class names; room reserved for `rows` rows.
inline Dataset empty_like(const Dataset& data, std::int64_t rows = 0) {
  Dataset d;
  d.feature_count = data.feature_count;
  d.target_width = data.target_width;
  d.feature_names = data.feature_names;
  d.target_names = data.target_names;
  d.class_names = data.class_names;
  d.categorical = data.categorical;
  d.features.reserve(static_cast<std::size_t>(rows) * static_cast<std::size_t>(data.feature_count));
  d.targets.reserve(static_cast<std::size_t>(rows) * static_cast<std::size_t>(data.target_width));
  return d;
}

inline void append_row(Dataset& to, const Dataset& from, std::int64_t row) {
  const std::span<const float> x = from.row_features(row);
  const std::span<const float> t = from.row_targets(row);
  to.features.insert(to.features.end(), x.begin(), x.end());
  to.targets.insert(to.targets.end(), t.begin(), t.end());
  ++to.rows;
}

}  // namespace shardprop::detail
