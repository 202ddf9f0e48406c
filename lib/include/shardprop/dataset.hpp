// In-memory datasets, the CSV reader that fills them, feature standardization and the
// validation split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardprop {

class DataStream;  // data_stream.hpp

// What happens to a row with a missing feature value (a field that is one of
// CsvOptions::na_values). A missing target is an error, or drops the row with `drop`.
enum class MissingPolicy {
  error,   // the read fails, naming the first missing cell (the default)
  mean,    // the cell is NaN in the read dataset; Imputation fills in the training mean
  median,  // ... the training median
  zero,    // ... 0
  drop,    // the row is left out
};

// A categorical feature column's vocabulary, fit on training data: its one-hot inputs are
// "COLUMN=CATEGORY", one per category in this (sorted) order.
struct CategoricalColumn {
  std::string column;                   // the CSV column's header name (or index without one)
  std::vector<std::string> categories;  // distinct texts, sorted by bytes
  std::vector<std::int64_t> counts;     // rows holding each category in the data fit on
};

// features: [rows, feature_count]; targets: [rows, target_width]. For class labels (and the xent
// loss) the single target column holds class indices 0..classes-1 stored as floats.
struct Dataset {
  std::int64_t rows = 0;
  int feature_count = 0;
  int target_width = 1;
  std::vector<float> features;
  std::vector<float> targets;
  std::vector<std::string> feature_names;  // may be empty
  std::vector<std::string> target_names;   // may be empty
  // Non-empty when the targets are class labels: class index i stands for class_names[i].
  std::vector<std::string> class_names;
  // The categorical columns' vocabularies, in input order (see CsvOptions::categorical).
  std::vector<CategoricalColumn> categorical;
  // Rows holding a category not in its given vocabulary (CsvOptions::categories): encoded as
  // all zeros in that column's inputs. Always 0 when the vocabularies were fit on these rows.
  std::int64_t unseen_category_rows = 0;

  // Throws Error when sizes disagree or a value is not finite; with allow_missing, NaN features
  // (missing cells not filled in yet, see Imputation) pass.
  void validate(bool allow_missing = false) const;
  std::span<const float> row_features(std::int64_t row) const;
  std::span<const float> row_targets(std::int64_t row) const;
  // class_names.size() if set, else 1 + the largest target.
  int class_count() const;
};

// How the target columns are read.
enum class TargetKind {
  automatic,  // numbers if every target field is a number, else class labels (one column only)
  numeric,    // numbers (regression, or class indices given as integers)
  classes,    // labels (strings or numbers) mapped to class indices, in sorted order: by value
              // when every label is a number, by bytes otherwise
};

struct CsvOptions {
  char delimiter = ',';
  bool header = true;  // false: the first line is data; columns are named "0", "1", ...
  // Target columns by header name or 0-based index; empty means the last column. Several
  // columns make a multi-output regression target.
  std::vector<std::string> targets;
  // Columns to skip, by header name or 0-based index.
  std::vector<std::string> ignore;
  // The feature columns, by header name or 0-based index, in this order (for a trained model's
  // features, which another file may hold in another order). Every column that is neither a
  // listed feature nor a target is then skipped. Empty: every column that is not a target or
  // ignored is a feature, in file order.
  std::vector<std::string> features;
  // No target column (prediction input): the dataset's target_width is 0 and its targets are
  // empty. `targets` must then be empty; a file may have a single (feature) column.
  bool no_target = false;
  TargetKind target_kind = TargetKind::automatic;
  // Accept nan/inf tokens in feature columns (they are rejected by default).
  bool allow_non_finite = false;
  // The unit of parallel parsing; chunks are cut at record boundaries (quotes respected).
  std::size_t chunk_bytes = std::size_t{4} << 20;
  // Lines skipped before the header (or the first record without one), whatever they hold, as
  // pandas' skiprows=N. Line numbers in messages still count them.
  std::int64_t skip_rows = 0;
  // Lines whose first byte is this character are skipped, wherever they are ('\0': none).
  char comment = '\0';
  // Field texts (after trimming blanks; quoted or not) that mean a missing value. With
  // allow_non_finite, nan and inf tokens are values, not missing.
  std::vector<std::string> na_values = {"",     "NA",   "N/A",  "n/a", "NaN",  "nan", "-nan",
                                        "NULL", "null", "None", "?",   "#N/A", "<NA>"};
  MissingPolicy missing = MissingPolicy::error;
  // Feature columns one-hot encoded, by header name or 0-based index: each becomes one input
  // per category, in its place among the features. A non-numeric feature column not listed
  // here is an error that suggests it.
  std::vector<std::string> categorical;
  // More distinct categories than this in one column is an error (0: no cap).
  int max_categories = 1000;
  // Vocabularies to encode with (a trained model's, for validation, evaluation and prediction
  // data), one per `categorical` column; a category not in its vocabulary encodes as all
  // zeros. Empty: the vocabularies are fit on the data read (Dataset::categorical).
  std::vector<CategoricalColumn> categories;
};

// Reads an RFC 4180 CSV file (quoted fields, "" escapes, LF or CRLF, UTF-8 BOM, blank trailing
// lines) in parallel in the caller's tbb::task_arena; rows keep file order. Every malformed
// input throws Error naming FILE:LINE:COLUMN and the column's header name; nothing is returned
// on error. `path` is a plain file (memory-mapped), a gzip or zstd file (recognized by its first
// bytes, not its name; decompressed into memory by a thread of its own; lines in messages are
// those of the uncompressed text), or "-" for standard input (named "<stdin>" in messages).
Dataset read_csv(const std::filesystem::path& path, const CsvOptions& options = {});

// The bytes of CSV text `path` holds, to choose between loading and streaming it: a plain file's
// size; for a gzip or zstd file an estimate, the larger of the size the file records (gzip: its
// last member's length, which gzip keeps modulo 2^32; zstd: its first frame's content size,
// when written) and three times its own size (what CSV text of numbers compresses by, or less);
// 0 for standard input ("-") and other files that are not regular. Throws Error "FILE: cannot
// read: reason".
std::uint64_t estimated_csv_bytes(const std::filesystem::path& path);

// read_csv with a binary cache: the parsed dataset is kept in `cache_directory` (empty: the CSV
// file's directory) as ".NAME.HASH.spcache", keyed by the CSV's size and modification time, the
// parse options and the library version. A later call with the same key reads the cache
// (memory-mapped) instead of parsing. The cache is written atomically; a missing, stale or
// damaged cache file is rebuilt, never trusted. A compressed file is keyed by its own size and
// modification time. A no_target read and standard input ("-") are not cached (it is read_csv).
Dataset read_csv_cached(const std::filesystem::path& path, const CsvOptions& options = {},
                        const std::filesystem::path& cache_directory = {});

// z-score standardization of the features: x' = (x − mean) / scale, with scale the standard
// deviation (1 for a constant column). Fit on training data only, then apply to every set.
struct Standardization {
  std::vector<float> mean;
  std::vector<float> scale;

  // Sums around the first row, exactly: the result does not depend on the thread count.
  static Standardization fit(const Dataset& data);
  // One pass over a stream (rewound first and afterwards), around the first chunk's first row:
  // bitwise the result of fitting the whole dataset, however the stream chunks it.
  static Standardization fit(DataStream& stream);
  // Throws Error if the feature count differs.
  void apply(Dataset& data) const;
  bool empty() const { return mean.empty(); }
};

// Missing feature values filled in: each NaN of feature j (a cell read as missing with the mean,
// median or zero policy, see CsvOptions::na_values) becomes fill[j]. Fit on training data only
// (after any validation split), then apply to every set; the standardization is fit after it,
// on imputed training data.
struct Imputation {
  MissingPolicy policy = MissingPolicy::error;
  // One per feature for mean, median and zero; empty for error and drop, which fill nothing.
  std::vector<float> fill;

  // Over each feature's values that are not NaN: mean, summed exactly, so the result does not
  // depend on threads, chunks or ranks; median, the middle value, or the mean of the two middle
  // ones (in double, rounded once to float), as numpy.median; zero, 0. Throws Error naming a
  // feature without a single value (mean and median).
  static Imputation fit(const Dataset& data, MissingPolicy policy);
  // The same over a stream (rewound first and afterwards), bitwise the fit of the whole dataset
  // however the stream chunks it: one pass for mean; for median, one when the first chunk's
  // middle values bracket the data's (the pass counts around them and selects among the values
  // near them), else five (an exact radix selection over the float bits follows); a first
  // chunk only for zero.
  static Imputation fit(DataStream& stream, MissingPolicy policy);
  // Replaces each NaN feature with its fill. Nothing for an empty fill; otherwise throws Error
  // if the feature count differs.
  void apply(Dataset& data) const;
  bool empty() const { return fill.empty(); }
};

// The name of a policy as the CLI and the model file spell it ("error", "mean", ...), and back
// (throws Error for another text).
std::string_view to_string(MissingPolicy policy);
MissingPolicy parse_missing_policy(const std::string& text);

// Re-indexes a dataset's class targets to `names` (usually the training set's class_names), so
// a validation or test file with a subset of the labels, or in another order, lines up.
// Throws Error naming the first label that is not in `names`.
void use_class_names(Dataset& data, const std::vector<std::string>& names);

// A seeded split: about `fraction` of the rows (at least one, at most all but one) go to the
// second dataset, chosen by a permutation of (seed); both keep the original row order.
std::pair<Dataset, Dataset> split_validation(const Dataset& data, double fraction,
                                             std::uint64_t seed);

}  // namespace shardprop
