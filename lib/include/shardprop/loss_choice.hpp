// The loss a CSV file's target suggests: what `shardprop train --loss auto` trains with and
// `shardprop inspect` reports, for C++ callers that pick a loss the same way.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"

namespace shardprop {

// Integer targets with at most this many distinct values are taken for classes.
inline constexpr int kMaxAutoClasses = 32;
// The text choose_loss reads: the first block of a CsvStream of this size.
inline constexpr std::size_t kLossChoiceBytes = std::size_t{1} << 20;

struct LossChoice {
  Loss loss = Loss::mse;
  std::string reason;         // why, in words: "the target holds 10 integer values"
  bool no_data_rows = false;  // the file has no data rows as `options` read it (loss: mse)
};

// From the rows in the first kLossChoiceBytes of `path` (a plain, gzip or zstd file, read as
// read_csv reads it with `options`): xent when the single target column holds a field that is
// not a number (labels), or only integers with 2 to kMaxAutoClasses distinct values; mse with
// several target columns or other numbers. Categorical columns are skipped rather than
// counted, and the target is read as numbers whatever options.target_kind says. Throws Error
// for what read_csv would report in those rows (a missing cell with MissingPolicy::error, for
// one), except a field that is not a number: that is taken for a label even in a feature
// column, which the read for training then reports with its place.
// `path` is read from its start, so it must not be a pipe that another reader still needs.
LossChoice choose_loss(const std::filesystem::path& path, const CsvOptions& options);

}  // namespace shardprop
