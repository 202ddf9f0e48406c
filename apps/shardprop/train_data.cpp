// Loading what `shardprop train` trains on. No mathematics: everything goes through the
// public API.
#include "train_data.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "model_input.hpp"
#include "shardprop/error.hpp"
#include "usage_error.hpp"

namespace shardprop::cli {

CsvOptions csv_options(const TrainOptions& o, Loss loss) {
  CsvOptions csv;
  csv.targets = o.targets;
  csv.ignore = o.ignore;
  csv.header = !o.no_header;
  csv.delimiter = parse_delimiter(o.delimiter);
  // xent learns classes: labels (strings or numbers) become class indices in sorted order.
  csv.target_kind = loss == Loss::xent ? TargetKind::classes : TargetKind::numeric;
  return csv;
}

Loss choose_loss(const TrainOptions& o, std::string& reason) {
  if (o.loss != "auto") return parse_loss(o.loss);
  CsvOptions csv = csv_options(o, Loss::mse);
  if (csv.targets.size() > 1) {
    reason = "several target columns";
    return Loss::mse;
  }
  Dataset first;
  try {
    CsvStream peek(o.data, csv, {}, std::size_t{1} << 20);
    if (!peek.next(first)) throw Error(o.data + ": no data rows");
  } catch (const Error& e) {
    // A field that is not a number is taken for a label; if it was a feature after all, the
    // real read reports it with its place.
    if (std::string(e.what()).find("is not a number") == std::string::npos) throw;
    reason = "the target holds labels";
    return Loss::xent;
  }
  std::vector<float> values(first.targets.begin(), first.targets.end());
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  const bool integers =
      std::all_of(values.begin(), values.end(), [](float v) { return v == std::floor(v); });
  if (integers && values.size() >= 2 && values.size() <= kMaxAutoClasses) {
    reason = "the target holds " + std::to_string(values.size()) + " integer values";
    return Loss::xent;
  }
  reason = "the target holds numbers";
  return Loss::mse;
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
  std::error_code error;
  const std::uintmax_t bytes = std::filesystem::file_size(o.data, error);
  if (error) throw Error(o.data + ": cannot read: " + error.message());
  return static_cast<double>(bytes) / (1024.0 * 1024.0) > threshold_mb;
}

void check_shape(const Dataset& other, const Dataset& shape, const std::string& file) {
  if (other.feature_count != shape.feature_count || other.target_width != shape.target_width) {
    throw Error(file + ": " + std::to_string(other.feature_count) + " features and " +
                std::to_string(other.target_width) + " targets, the training data has " +
                std::to_string(shape.feature_count) + " and " + std::to_string(shape.target_width));
  }
}

TrainingData load_in_memory(const TrainOptions& o, const CsvOptions& csv, Loss loss,
                            const StoredDataState& stored) {
  TrainingData d;
  const bool cached = o.cache || !o.cache_dir.empty();
  auto load = [&](const std::string& file) {
    return cached ? read_csv_cached(file, csv, o.cache_dir) : read_csv(file, csv);
  };
  d.train = load(o.data);
  if (d.train->rows == 0) throw Error(o.data + ": no data rows");
  if (loss == Loss::xent && !stored.class_names.empty()) {
    use_class_names(*d.train, stored.class_names);
  }
  if (!o.validation.empty()) {
    d.validation = load(o.validation);
    check_shape(*d.validation, *d.train, o.validation);
    if (loss == Loss::xent) use_class_names(*d.validation, d.train->class_names);
  } else if (o.validation_split > 0.0) {
    auto [train_part, validation_part] = split_validation(*d.train, o.validation_split, o.seed);
    d.train = std::move(train_part);
    d.validation = std::move(validation_part);
  }
  if (!o.no_standardize) {
    d.standardization =
        stored.standardization ? *stored.standardization : Standardization::fit(*d.train);
    d.standardization.apply(*d.train);
    if (d.validation) d.standardization.apply(*d.validation);
  }
  d.shape = *d.train;
  return d;
}

TrainingData load_streaming(const TrainOptions& o, const CsvOptions& csv, Loss loss,
                            const StoredDataState& stored) {
  if (o.cache || !o.cache_dir.empty()) {
    // With --stream itself this is refused earlier; here the file's size chose streaming.
    throw UsageError(o.data +
                     " is streamed (larger than --stream-above-mb, by default a quarter of the "
                     "physical memory); --cache keeps a parsed copy of data loaded into memory: "
                     "leave it out");
  }
  TrainingData d;
  // Labels are sorted over the whole file, so a first pass collects them.
  std::vector<std::string> classes;
  if (loss == Loss::xent) {
    classes = stored.class_names.empty() ? collect_class_names(o.data, csv) : stored.class_names;
  }
  auto open = [&](const std::string& file) {
    auto stream = std::make_unique<CsvStream>(file, csv, classes);
    CsvStream* csv_stream = stream.get();
    d.streams.push_back(std::move(stream));
    return csv_stream;
  };
  auto keep = [&](std::unique_ptr<DataStream> stream) {
    d.streams.push_back(std::move(stream));
    return d.streams.back().get();
  };
  std::vector<CsvStream*> standardized{open(o.data)};
  d.train_stream = standardized.front();
  if (!o.validation.empty()) {
    standardized.push_back(open(o.validation));
    d.validation_stream = standardized.back();
  } else if (o.validation_split > 0.0) {
    // Two readers of the same file, each keeping its side of a row-by-row seeded split.
    standardized.push_back(open(o.data));
    d.train_stream = keep(std::make_unique<SplitStream>(*standardized.front(), o.validation_split,
                                                        o.seed, SplitStream::Part::training));
    d.validation_stream = keep(std::make_unique<SplitStream>(
        *standardized.back(), o.validation_split, o.seed, SplitStream::Part::validation));
  }
  if (!o.no_standardize) {
    // Fit on the training rows only, then standardize every stream's rows.
    d.standardization =
        stored.standardization ? *stored.standardization : Standardization::fit(*d.train_stream);
    for (CsvStream* stream : standardized) stream->set_standardization(d.standardization);
  }
  if (!d.train_stream->next(d.shape)) throw Error(o.data + ": no training rows");
  d.train_stream->rewind();
  d.shape.class_names = classes;
  if (d.validation_stream != nullptr) {
    Dataset first;
    if (!d.validation_stream->next(first)) {
      throw Error(o.validation.empty()
                      ? o.data + ": --val-split " + std::to_string(o.validation_split) +
                            " held out no row: raise it"
                      : o.validation + ": no data rows");
    }
    check_shape(first, d.shape, o.validation.empty() ? o.data : o.validation);
    d.validation_stream->rewind();
  }
  return d;
}

}  // namespace

bool should_stream(const TrainOptions& o) { return should_stream_impl(o); }

TrainingData load_training_data(const TrainOptions& o, Loss loss, const StoredDataState& stored) {
  const CsvOptions csv = csv_options(o, loss);
  return should_stream(o) ? load_streaming(o, csv, loss, stored)
                          : load_in_memory(o, csv, loss, stored);
}

}  // namespace shardprop::cli
