// A dataset spread over the ranks of a communicator: each rank holds a contiguous run of its
// rows, in file order, and knows where that run sits in the whole. Trainer::train_epoch and
// evaluate take a part and exchange rows between ranks as the global minibatches need them, so
// a rank never holds, or reads, more than its share of the file. With one process, the part
// is the whole dataset.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shardprop/communicator.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop {

struct DatasetPart {
  Dataset rows;                 // this rank's rows (names and class names as the whole's)
  std::int64_t first_row = 0;   // the index of rows' first row in the whole dataset
  std::int64_t total_rows = 0;  // rows of all ranks
};

// A streamed part: `stream` hands out, in order, rows first_row .. first_row + rows − 1 of a
// whole of total_rows rows (ranks hold consecutive runs in rank order). Trainer::train_epoch
// shuffles the whole through one buffer as a single process would, each rank buffering the rows
// it read; see open_csv_stream_part.
struct StreamPart {
  DataStream* stream = nullptr;
  std::int64_t first_row = 0;
  std::int64_t rows = 0;
  std::int64_t total_rows = 0;
};

// The whole dataset as the one part of a single process.
DatasetPart whole_dataset(Dataset data);

// Collective: rank r of P reads only the records that start in its P-th of the file's bytes
// (after the header), cut at record boundaries; lines in messages count from the start of the
// file. With TargetKind::classes the labels of all ranks are collected, sorted as read_csv sorts
// them and indexed alike on every rank (TargetKind::automatic is refused: ranks could disagree).
// Categorical columns fit without given vocabularies: each rank's are merged (union, counts
// summed, sorted by bytes, capped as read_csv caps them) and every rank's rows encoded with them.
// Bad input on any rank throws CollectiveError on every rank, naming that rank, file, line and
// column.
DatasetPart read_csv_part(const std::filesystem::path& path, const CsvOptions& options,
                          const Communicator& comm = {});

// Collective: this rank's part of a CSV file as a stream: the records that start in its share
// of the bytes, read block by block (same rules and messages as CsvStream). class_names as
// CsvStream takes them (collect_class_names below gives the whole's).
std::unique_ptr<CsvStream> open_csv_stream_part(
    const std::filesystem::path& path, const CsvOptions& options, const Communicator& comm,
    std::vector<std::string> class_names = {},
    std::size_t block_bytes = CsvStream::kDefaultBlockBytes);

// Collective: the class labels of the whole file's target column, each rank reading its part
// in one streaming pass; sorted as read_csv sorts them.
std::vector<std::string> collect_class_names(const std::filesystem::path& path,
                                             const CsvOptions& options, const Communicator& comm);

// Collective: the vocabularies of the whole file's categorical columns, each rank counting its
// part in one streaming pass; the result of collect_categories(path, options) on every rank.
std::vector<CategoricalColumn> collect_categories(const std::filesystem::path& path,
                                                  const CsvOptions& options,
                                                  const Communicator& comm);

// The class labels of a streamed CSV file learnt by scan_stream_part's pass rather than by a
// pass of their own (collect_class_names). `source`: this rank's part of the file
// (open_csv_stream_part with TargetKind::classes and no class names), which the scanned stream
// reads whole, itself or through a SplitStream over it.
struct ClassLabelScan {
  CsvStream* source = nullptr;
  std::vector<std::string> names;  // out: the whole file's labels, as collect_class_names gives
};

// Collective: one pass over this rank's part stream (rewound before and after) that counts its
// rows and places them in the whole; with `standardization` not null, the same pass fits the
// whole's standardization into it, bitwise Standardization::fit(DataStream&) of the whole. With
// `labels` not null the same pass also collects the labels of labels->source (its targets are
// not read meanwhile), and from then on the source reads its targets as those classes.
StreamPart scan_stream_part(DataStream& stream, const Communicator& comm,
                            Standardization* standardization = nullptr,
                            ClassLabelScan* labels = nullptr);

// Collective: the standardization of the whole dataset, bitwise the same for any number of
// ranks (and equal to Standardization::fit of the whole).
Standardization fit_standardization(const DatasetPart& part, const Communicator& comm = {});

// Collective: the imputation of the whole dataset (Imputation::fit of the whole), bitwise the
// same for any number of ranks: exact sums for mean; for median, counts around the middle
// values of every rank's sample and a selection among the values near them (one pass over the
// part), or summed byte histograms when the sample misses (four more). A feature without a value
// anywhere throws CollectiveError.
Imputation fit_imputation(const DatasetPart& part, MissingPolicy policy,
                          const Communicator& comm = {});
// Collective: the same over every rank's part stream (rewound first and afterwards), bitwise
// Imputation::fit(DataStream&) of the whole: one pass for mean, one or five for median, none for
// zero.
Imputation fit_imputation(DataStream& stream, MissingPolicy policy, const Communicator& comm = {});

// Collective: re-indexes every rank's class targets to `names` (see use_class_names).
void use_class_names(DatasetPart& part, const std::vector<std::string>& names,
                     const Communicator& comm = {});

// Collective: a seeded split by row: row i of the whole is held out when a counter-based hash
// of (seed, i) falls in the lowest `fraction` of its range, the rule SplitStream uses, so the
// split does not depend on the rank count (about fraction × rows are held out; at least one row
// and at most all but one). Returns (training, validation) parts.
std::pair<DatasetPart, DatasetPart> split_validation(const DatasetPart& part, double fraction,
                                                     std::uint64_t seed,
                                                     const Communicator& comm = {});

}  // namespace shardprop
