// Loading what `shardprop train` trains on. No mathematics: everything goes through the
// public API.
#include "train_data.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "model_input.hpp"
#include "preamble_options.hpp"
#include "shardprop/error.hpp"
#include "shardprop/loss_choice.hpp"
#include "usage_error.hpp"

namespace shardprop::cli {

namespace {

// A file without rows to train on; with --missing drop, say that drop may have left them out.
std::string no_data_rows(const std::string& file, const CsvOptions& csv) {
  if (csv.missing != MissingPolicy::drop) return file + ": no data rows";
  return file +
         ": no data rows (--missing drop leaves out every row with a missing value; fill them in "
         "with --missing mean|median|zero instead)";
}

}  // namespace

CsvOptions csv_options(const TrainOptions& o, Loss loss) {
  CsvOptions csv;
  csv.targets = o.targets;
  csv.ignore = o.ignore;
  csv.categorical = o.categorical;
  csv.max_categories = o.max_categories;
  csv.header = !o.no_header;
  csv.delimiter = parse_delimiter(o.delimiter);
  set_preamble_options(csv, o.skip_rows, o.comment);
  csv.na_values = o.na_values;
  csv.missing = parse_missing_policy(o.missing);
  // xent learns classes: labels (strings or numbers) become class indices in sorted order.
  csv.target_kind = loss == Loss::xent ? TargetKind::classes : TargetKind::numeric;
  return csv;
}

Loss choose_loss(const TrainOptions& o, std::string& reason) {
  if (o.loss != "auto") return parse_loss(o.loss);
  const CsvOptions csv = csv_options(o, Loss::mse);
  const LossChoice choice = shardprop::choose_loss(o.data, csv);
  if (choice.no_data_rows) throw Error(no_data_rows(o.data, csv));
  reason = choice.reason;
  return choice.loss;
}

namespace {

bool should_stream_impl(const TrainOptions& o) {
  if (o.stream) return true;
  double threshold_mb = o.stream_above_mb;
  if (threshold_mb <= 0.0) {
    const double pages = static_cast<double>(::sysconf(_SC_PHYS_PAGES));
    const double page_size = static_cast<double>(::sysconf(_SC_PAGESIZE));
    threshold_mb = pages * page_size / 4.0 / (1024.0 * 1024.0);
  }
  std::uintmax_t bytes = 0;
  if (o.data == "-") {  // spooled to a file (stdin_spool.hpp) by now
    struct stat info {};
    if (::fstat(STDIN_FILENO, &info) == 0 && S_ISREG(info.st_mode)) {
      bytes = static_cast<std::uintmax_t>(info.st_size);
    }
  } else {
    // A compressed file by the text it holds: what loading it takes.
    bytes = estimated_csv_bytes(o.data);
  }
  return static_cast<double>(bytes) / (1024.0 * 1024.0) > threshold_mb;
}

void check_shape(const Dataset& other, const Dataset& shape, const std::string& file) {
  if (other.feature_count != shape.feature_count || other.target_width != shape.target_width) {
    throw Error(file + ": " + std::to_string(other.feature_count) + " features and " +
                std::to_string(other.target_width) + " targets, the training data has " +
                std::to_string(shape.feature_count) + " and " + std::to_string(shape.target_width));
  }
}

// Each rank reads its part of every file (a cached file is read whole: one process only).
TrainingData load_in_memory(const TrainOptions& o, CsvOptions csv, Loss loss,
                            const StoredDataState& stored, const Communicator& comm) {
  TrainingData d;
  if (!csv.categorical.empty()) csv.categories = stored.categorical;
  const bool cached = o.cache || !o.cache_dir.empty();
  if (cached && comm.size() > 1) {
    throw UsageError(
        "--cache keeps a parsed copy for one process; under mpirun each rank reads "
        "its own part of the CSV file: leave --cache out");
  }
  auto load = [&](const std::string& file) {
    return cached ? whole_dataset(read_csv_cached(file, csv, o.cache_dir))
                  : read_csv_part(file, csv, comm);
  };
  d.train = load(o.data);
  if (d.train->total_rows == 0) throw CollectiveError(no_data_rows(o.data, csv));
  if (loss == Loss::xent && !stored.class_names.empty()) {
    use_class_names(*d.train, stored.class_names, comm);
  }
  if (!o.validation.empty()) {
    // Validation rows are encoded with the training set's categories.
    if (!csv.categorical.empty()) csv.categories = d.train->rows.categorical;
    d.validation = load(o.validation);
    check_shape(d.validation->rows, d.train->rows, o.validation);
    if (loss == Loss::xent) use_class_names(*d.validation, d.train->rows.class_names, comm);
  } else if (o.validation_split > 0.0) {
    auto [train_part, validation_part] =
        split_validation(*d.train, o.validation_split, o.seed, comm);
    d.train = std::move(train_part);
    d.validation = std::move(validation_part);
  }
  // Missing values: filled in with statistics of the training rows, before the standardization
  // is fit on them.
  d.imputation =
      stored.imputation ? *stored.imputation : fit_imputation(*d.train, csv.missing, comm);
  d.imputation.apply(d.train->rows);
  if (d.validation) d.imputation.apply(d.validation->rows);
  if (!o.no_standardize) {
    d.standardization =
        stored.standardization ? *stored.standardization : fit_standardization(*d.train, comm);
    d.standardization.apply(d.train->rows);
    if (d.validation) d.standardization.apply(d.validation->rows);
  }
  d.shape = d.train->rows;
  d.shape.rows = d.train->total_rows;
  d.shape.features.clear();
  d.shape.targets.clear();
  return d;
}

// The first rows of a file (its first block), for its columns.
Dataset first_rows(const std::string& file, const CsvOptions& csv,
                   const std::vector<std::string>& classes) {
  CsvStream peek(file, csv, classes, std::size_t{1} << 20);
  Dataset first;
  if (!peek.next(first)) throw CollectiveError(no_data_rows(file, csv));
  return first;
}

// Each rank streams its part of every file; one process streams the whole.
TrainingData load_streaming(const TrainOptions& o, CsvOptions csv, Loss loss,
                            const StoredDataState& stored, const Communicator& comm) {
  if (o.cache || !o.cache_dir.empty()) {
    // With --stream itself this is refused earlier; here the file's size chose streaming.
    throw UsageError(o.data +
                     " is streamed (larger than --stream-above-mb, by default a quarter of the "
                     "physical memory); --cache keeps a parsed copy of data loaded into memory: "
                     "leave it out");
  }
  TrainingData d;
  // Streams encode categories they have not all seen yet: a pass over the training file first
  // fits them (a resumed run keeps its own), and every stream encodes with those.
  if (!csv.categorical.empty()) {
    csv.categories =
        stored.categorical.empty() ? collect_categories(o.data, csv, comm) : stored.categorical;
  }
  // Labels are sorted over the whole file, so they must all be seen before any target is read:
  // the pass that counts the training rows collects them. On several ranks with --val-split,
  // placing the split needs a pass before that one, so a first pass collects them there.
  std::vector<std::string> classes;
  ClassLabelScan labels;
  const bool learn_classes = loss == Loss::xent && stored.class_names.empty();
  // Filling in missing values needs its statistics before the standardization is fit: a pass
  // of its own (four for median), which reads targets, so the labels must be known before it.
  const bool fit_imputation_first = !stored.imputation && (csv.missing == MissingPolicy::mean ||
                                                           csv.missing == MissingPolicy::median ||
                                                           csv.missing == MissingPolicy::zero);
  const bool scan_learns_classes =
      learn_classes && !fit_imputation_first && !(comm.size() > 1 && o.validation_split > 0.0);
  if (loss == Loss::xent) {
    if (!learn_classes) classes = stored.class_names;
    if (learn_classes && !scan_learns_classes) classes = collect_class_names(o.data, csv, comm);
  }
  auto open = [&](const std::string& file) {
    d.streams.push_back(open_csv_stream_part(file, csv, comm, classes));
    return static_cast<CsvStream*>(d.streams.back().get());
  };
  auto keep = [&](std::unique_ptr<DataStream> stream) {
    d.streams.push_back(std::move(stream));
    return d.streams.back().get();
  };
  // Where a rank's rows start in the whole: known without reading in one process.
  auto first_row = [&](DataStream& stream) {
    return comm.size() == 1 ? std::int64_t{0} : scan_stream_part(stream, comm).first_row;
  };
  std::vector<CsvStream*> standardized{open(o.data)};
  DataStream* train = standardized.front();
  std::int64_t split_first = 0;
  if (o.validation_split > 0.0) {
    // Two readers of the same part, each keeping its side of a row-by-row seeded split; the
    // held-out side's reader opens once the labels are known.
    split_first = first_row(*standardized.front());
    train = keep(std::make_unique<SplitStream>(*standardized.front(), o.validation_split, o.seed,
                                               SplitStream::Part::training, split_first));
  }
  if (stored.imputation) d.imputation = *stored.imputation;
  if (fit_imputation_first) d.imputation = fit_imputation(*train, csv.missing, comm);
  standardized.front()->set_imputation(d.imputation);
  // One pass counts the training rows and, without a stored standardization, fits one on them,
  // and collects the labels; then every stream's rows are standardized.
  const bool fit = !o.no_standardize && !stored.standardization;
  labels.source = standardized.front();
  d.train_stream = scan_stream_part(*train, comm, fit ? &d.standardization : nullptr,
                                    scan_learns_classes ? &labels : nullptr);
  if (scan_learns_classes) classes = labels.names;
  if (d.train_stream.total_rows == 0) throw CollectiveError(o.data + ": no training rows");
  if (!o.validation.empty()) {
    standardized.push_back(open(o.validation));
    d.validation_stream = StreamPart{standardized.back(), first_row(*standardized.back()), -1, -1};
  } else if (o.validation_split > 0.0) {
    standardized.push_back(open(o.data));
    DataStream* held_out =
        keep(std::make_unique<SplitStream>(*standardized.back(), o.validation_split, o.seed,
                                           SplitStream::Part::validation, split_first));
    d.validation_stream = StreamPart{held_out, split_first, -1, -1};
  }
  for (CsvStream* stream : standardized) stream->set_imputation(d.imputation);
  if (!o.no_standardize) {
    if (stored.standardization) d.standardization = *stored.standardization;
    for (CsvStream* stream : standardized) stream->set_standardization(d.standardization);
  }
  // The columns, from the start of the file (every rank reads the same first block).
  d.shape = first_rows(o.data, csv, classes);
  d.shape.rows = d.train_stream.total_rows;
  d.shape.class_names = classes;
  if (d.validation_stream) {
    if (!o.validation.empty())
      check_shape(first_rows(o.validation, csv, classes), d.shape, o.validation);
    Dataset first;
    d.validation_stream->stream->rewind();
    const bool any = d.validation_stream->stream->next(first);
    d.validation_stream->stream->rewind();
    if (comm.sum(any ? 1 : 0) == 0) {
      throw CollectiveError(o.validation.empty()
                                ? o.data + ": --val-split " + std::to_string(o.validation_split) +
                                      " held out no row: raise it"
                                : no_data_rows(o.validation, csv));
    }
  }
  return d;
}

}  // namespace

bool should_stream(const TrainOptions& o, const Communicator& comm) {
  // Every rank sees the same file, but memory sizes may differ between nodes: rank 0 decides.
  const bool here = should_stream_impl(o);
  return comm.broadcast(here ? 1 : 0, 0) != 0;
}

TrainingData load_training_data(const TrainOptions& o, Loss loss, const StoredDataState& stored,
                                const Communicator& comm) {
  const CsvOptions csv = csv_options(o, loss);
  return o.stream ? load_streaming(o, csv, loss, stored, comm)
                  : load_in_memory(o, csv, loss, stored, comm);
}

}  // namespace shardprop::cli
