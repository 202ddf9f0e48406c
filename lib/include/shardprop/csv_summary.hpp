// A summary of a CSV file's columns, for choosing read options before training: each column's
// inferred type, missing values, range or categories, and the target column read_csv would
// use. Leaves out what the trainer then does with the columns (losses, encodings).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "shardprop/dataset.hpp"

namespace shardprop {

// What every non-missing field of a column holds.
enum class CsvColumnType {
  integer,  // numbers written as an optional sign and digits only
  number,   // numbers (as read_csv reads a feature), some not written as integers
  text,     // some field is not a number
  empty,    // every field is missing
};

const char* to_string(CsvColumnType type);

struct CsvColumnSummary {
  std::string name;  // the header's field, or the 0-based index without a header
  CsvColumnType type = CsvColumnType::empty;
  std::int64_t missing = 0;  // fields that are one of CsvOptions::na_values
  // integer and number columns: over the non-missing values, as floats (read_csv's values)
  double min = 0.0;
  double mean = 0.0;
  double max = 0.0;
  // Distinct non-missing texts (after trimming blanks and unquoting), counted exactly up to
  // kCsvSummaryMaxDistinct; above that, distinct_exceeded is set and distinct is meaningless.
  std::int64_t distinct = 0;
  bool distinct_exceeded = false;
  // The most frequent texts with their counts, most frequent first (ties: by bytes); at most
  // kCsvSummaryTopCategories, and empty when distinct_exceeded.
  std::vector<std::pair<std::string, std::int64_t>> top;
  bool target = false;  // the column read_csv would read as the target
};

inline constexpr std::int64_t kCsvSummaryMaxDistinct = 1000;
inline constexpr std::size_t kCsvSummaryTopCategories = 5;

struct CsvSummary {
  std::int64_t rows = 0;  // records (comment and skipped lines excluded)
  std::vector<CsvColumnSummary> columns;
  // Index in columns of the target read_csv would use (CsvOptions::targets, else the last
  // column): the first one with several targets; -1 with no_target.
  std::int64_t target = -1;
};

// One streaming pass over `path` (as read_csv takes it: a plain, gzip or zstd file, or "-" for
// standard input) with read_csv's rules for quoting, skipped and comment lines,
// blank lines and field counts (same FILE:LINE:COLUMN messages): blocks of the file are read in
// turn and each block's chunks (options.chunk_bytes) are summarized in parallel in the caller's
// task_arena, so memory stays bounded whatever the file's size. options.targets, ignore and
// features name columns as read_csv does (bad names are errors); other options (target_kind,
// missing, categorical) do not change the summary. Deterministic for given options.
CsvSummary summarize_csv(const std::filesystem::path& path, const CsvOptions& options = {});

}  // namespace shardprop
