// Missing values after the parse: leaving out the rows of MissingPolicy::drop, and fitting an
// Imputation over rows that may be spread over chunks of a stream and over ranks. Leaves out
// finding missing cells (the record parser) and talking between processes (the caller passes
// an allgather).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/csv_parser.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// Leaves out every row with a NaN feature or target, keeping the order of the others; `labels`
// (one per row, or null) move with their rows. Returns the rows left out.
std::int64_t drop_missing_rows(Dataset& data, LabelText* labels);

// Where the rows of a fit are.
struct ImputationRows {
  int features = 0;
  std::vector<std::string> names;  // the features' names, for messages (may be empty)
  // Calls work(chunk) for every chunk of this process's rows, in order (a pass).
  std::function<void(const std::function<void(const Dataset&)>& work)> pass;
  // Calls work(rows) once with some of this process's rows, chosen cheaply (none is fine): the
  // median looks for the middle values near those of the sample first. Optional.
  std::function<void(const std::function<void(const Dataset&)>& work)> sample;
  // Every process's words, in rank order (collective; the lengths may differ); one process: its
  // own, moved.
  std::function<std::vector<std::vector<std::uint64_t>>(std::vector<std::uint64_t>)> gather;
};

// Throws Error: feature j (named from `names` when there) has no value for `policy` to fit.
[[noreturn]] void throw_no_values(MissingPolicy policy, const std::vector<std::string>& names,
                                  int j);

// Throws Error unless `rows` has `features` features.
void check_feature_count(const Dataset& rows, int features);

// The fit of Imputation::fit over every process's rows: bitwise the same for any chunking and
// process count. Mean: one pass; median: one when the sample's middle values bracket the
// data's (counting around them, then selecting among the few values collected), else four more
// (one byte of each value's order key per pass); zero: none. Throws Error naming a feature with no
// value (mean and median).
Imputation fit_imputation(MissingPolicy policy, const ImputationRows& rows);

}  // namespace shardprop::detail
