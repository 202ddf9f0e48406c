// Datasets spread over ranks: reading a rank's part of a CSV file, and the collective steps that
// make every rank's part agree with the whole (class labels, standardization, the validation
// split). Every collective result is a function of the whole dataset, never of the rank count.
#include "shardprop/dataset_part.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/agreement.hpp"
#include "base/communicator.hpp"
#include "data/csv_categorical.hpp"
#include "data/csv_labels.hpp"
#include "data/csv_part.hpp"
#include "data/dataset_rows.hpp"
#include "data/feature_moments.hpp"
#include "data/imputation_fit.hpp"
#include "data/median_fit.hpp"
#include "data/row_split.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

// Where each rank's rows start, from every rank's row count (collective).
std::vector<std::int64_t> part_starts(detail::Communicator& comm, std::int64_t rows) {
  const std::vector<std::int64_t> counts = comm.allgather(rows);
  std::vector<std::int64_t> starts(counts.size() + 1, 0);
  std::partial_sum(counts.begin(), counts.end(), starts.begin() + 1);
  return starts;
}

// Names as one string: each name's length (8 bytes) then its bytes; names may hold any byte.
std::string encode_names(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) {
    const std::uint64_t size = name.size();
    text.append(reinterpret_cast<const char*>(&size), sizeof size);
    text += name;
  }
  return text;
}

void decode_names(std::string_view text, std::vector<std::string>& into) {
  while (text.size() >= sizeof(std::uint64_t)) {
    std::uint64_t size = 0;
    std::memcpy(&size, text.data(), sizeof size);
    text.remove_prefix(sizeof size);
    into.emplace_back(text.substr(0, size));
    text.remove_prefix(std::min<std::size_t>(size, text.size()));
  }
}

// The quotes and line ends in the ranks' byte ranges before this rank's: where its records
// start, and the line numbers of its messages. Collective.
detail::CsvPartScan scan_before(const std::filesystem::path& path, const CsvOptions& options,
                                detail::Communicator& c) {
  detail::CsvPartScan scan;
  detail::agree(c, [&] {
    if (c.rank() == c.size() - 1) {
      detail::check_csv_part(path, options, c.rank(), c.size());  // the sums below leave it out
    } else {
      scan = detail::scan_csv_part(path, options, c.rank(), c.size());
    }
  });
  const std::vector<detail::CsvPartScan> scans = c.allgather(scan);
  detail::CsvPartScan before;
  for (int r = 0; r < c.rank(); ++r) {
    before.quotes += scans[static_cast<std::size_t>(r)].quotes;
    before.newlines += scans[static_cast<std::size_t>(r)].newlines;
  }
  return before;
}

// Every rank's class labels, sorted as one read of the whole file sorts them. Collective.
std::vector<std::string> union_of_labels(detail::Communicator& c,
                                         const std::vector<std::string>& mine) {
  std::vector<std::string> names;
  for (const std::string& text : c.allgather_strings(encode_names(mine))) {
    decode_names(text, names);
  }
  detail::sort_class_labels(names);
  return names;
}

// Every rank's vocabularies merged: the union of each column's categories, counts summed,
// sorted by bytes. Collective; every rank gets the same result.
std::vector<CategoricalColumn> union_of_categories(detail::Communicator& c,
                                                   const std::vector<CategoricalColumn>& mine) {
  // Per column: its category count, then each category and its count, as names.
  std::vector<std::string> fields;
  for (const CategoricalColumn& column : mine) {
    fields.push_back(std::to_string(column.categories.size()));
    for (std::size_t i = 0; i < column.categories.size(); ++i) {
      fields.push_back(column.categories[i]);
      fields.push_back(std::to_string(column.counts[i]));
    }
  }
  detail::CategoryCounts counts(mine.size());
  for (const std::string& text : c.allgather_strings(encode_names(fields))) {
    std::vector<std::string> theirs;
    decode_names(text, theirs);
    std::size_t at = 0;
    for (std::size_t k = 0; k < mine.size() && at < theirs.size(); ++k) {
      const std::size_t size = std::stoull(theirs[at++]);
      for (std::size_t i = 0; i < size; ++i, at += 2) {
        counts[k][theirs[at]] += std::stoll(theirs[at + 1]);
      }
    }
  }
  return detail::category_vocabularies(mine, counts);
}

// The whole's first row, held by the first rank with rows (`first` on the ranks with rows).
// Collective; throws CollectiveError when no rank has a row.
std::vector<float> first_row_of_whole(detail::Communicator& c, std::span<const float> first,
                                      int features) {
  const std::vector<std::int64_t> has = c.allgather<std::int64_t>(first.empty() ? 0 : 1);
  const auto holder = std::find(has.begin(), has.end(), 1);
  if (holder == has.end()) throw CollectiveError("standardization: the dataset has no rows");
  const int root = static_cast<int>(holder - has.begin());
  std::vector<float> row(static_cast<std::size_t>(features), 0.0f);
  if (c.rank() == root) std::copy(first.begin(), first.end(), row.begin());
  c.broadcast(std::span<float>(row), root);
  return row;
}

// The standardization of the ranks' moments merged (exact: in any order, the bits of one pass).
Standardization merged_result(detail::Communicator& c, const detail::FeatureMoments& moments,
                              std::span<const float> shift) {
  if (c.size() == 1) return moments.result();
  const std::vector<std::uint64_t> mine = moments.serialize();
  std::vector<std::uint64_t> all(mine.size() * static_cast<std::size_t>(c.size()));
  c.allgather(std::span<const std::uint64_t>(mine), std::span<std::uint64_t>(all));
  detail::FeatureMoments total(shift);
  for (int r = 0; r < c.size(); ++r) {
    total.merge(detail::FeatureMoments::deserialize(std::span<const std::uint64_t>(all).subspan(
        static_cast<std::size_t>(r) * mine.size(), mine.size())));
  }
  return total.result();
}

}  // namespace

DatasetPart whole_dataset(Dataset data) {
  DatasetPart part;
  part.total_rows = data.rows;
  part.rows = std::move(data);
  return part;
}

DatasetPart read_csv_part(const std::filesystem::path& path, const CsvOptions& options,
                          const Communicator& comm) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  const int rank = c.rank(), ranks = c.size();
  const detail::CsvPartScan before = scan_before(path, options, c);
  DatasetPart part;
  std::vector<std::int32_t> positions;
  detail::agree(c, [&] {
    detail::CsvPart read = detail::read_csv_part(path, options, rank, ranks, before);
    part.rows = std::move(read.data);
    positions = std::move(read.category_positions);
  });
  const std::vector<std::int64_t> starts = part_starts(c, part.rows.rows);
  part.first_row = starts[static_cast<std::size_t>(rank)];
  part.total_rows = starts.back();
  if (options.target_kind == TargetKind::classes && !options.no_target && ranks > 1) {
    use_class_names(part, union_of_labels(c, part.rows.class_names), comm);
  }
  // Each rank fit its own rows' vocabularies: all of them go by the union, as one read would.
  if (!options.categorical.empty() && options.categories.empty() && ranks > 1) {
    const std::vector<CategoricalColumn> all = union_of_categories(c, part.rows.categorical);
    detail::agree(c, [&] {
      detail::check_category_cap(path.string(), all, options.max_categories);
      detail::recode_categories(part.rows, positions, all);
    });
  }
  return part;
}

std::unique_ptr<CsvStream> open_csv_stream_part(const std::filesystem::path& path,
                                                const CsvOptions& options, const Communicator& comm,
                                                std::vector<std::string> class_names,
                                                std::size_t block_bytes) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  const detail::CsvPartScan before = scan_before(path, options, c);
  std::unique_ptr<CsvStream> stream;
  detail::agree(c, [&] {
    stream = detail::open_csv_stream_part(path, options, std::move(class_names), block_bytes,
                                          c.rank(), c.size(), before);
  });
  return stream;
}

std::vector<std::string> collect_class_names(const std::filesystem::path& path,
                                             const CsvOptions& options, const Communicator& comm) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  const detail::CsvPartScan before = scan_before(path, options, c);
  std::vector<std::string> mine;
  detail::agree(c, [&] {
    mine = detail::collect_class_names_part(path, options, c.rank(), c.size(), before);
  });
  return union_of_labels(c, mine);
}

std::vector<CategoricalColumn> collect_categories(const std::filesystem::path& path,
                                                  const CsvOptions& options,
                                                  const Communicator& comm) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  const detail::CsvPartScan before = scan_before(path, options, c);
  std::vector<CategoricalColumn> mine;
  detail::agree(c, [&] {
    mine = detail::collect_categories_part(path, options, c.rank(), c.size(), before);
  });
  std::vector<CategoricalColumn> all = union_of_categories(c, mine);
  detail::agree(c, [&] { detail::check_category_cap(path.string(), all, options.max_categories); });
  return all;
}

StreamPart scan_stream_part(DataStream& stream, const Communicator& comm,
                            Standardization* standardization, ClassLabelScan* labels) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  Dataset chunk;
  bool any = false;
  detail::agree(c, [&] {
    if (labels != nullptr) {
      if (labels->source == nullptr) throw Error("scan_stream_part: the label scan has no stream");
      detail::CsvStreamAccess::begin_label_collection(*labels->source);
    }
    stream.rewind();
    any = stream.next(chunk);
  });
  std::optional<detail::FeatureMoments> moments;
  std::vector<float> shift;
  if (standardization != nullptr) {
    // A rank without rows learns the feature count from the others.
    const std::vector<std::int64_t> counts =
        c.allgather<std::int64_t>(any ? chunk.feature_count : 0);
    const std::int64_t features = *std::max_element(counts.begin(), counts.end());
    shift = first_row_of_whole(c, any ? chunk.row_features(0) : std::span<const float>(),
                               static_cast<int>(features));
    moments.emplace(shift);
  }
  std::int64_t rows = 0;
  detail::agree(c, [&] {
    for (bool more = any; more; more = stream.next(chunk)) {
      rows += chunk.rows;
      if (moments) moments->add(chunk);
    }
    stream.rewind();
  });
  const std::vector<std::int64_t> starts = part_starts(c, rows);
  StreamPart part;
  part.stream = &stream;
  part.first_row = starts[static_cast<std::size_t>(c.rank())];
  part.rows = rows;
  part.total_rows = starts.back();
  if (moments) *standardization = merged_result(c, *moments, shift);
  if (labels != nullptr) {
    labels->names =
        union_of_labels(c, detail::CsvStreamAccess::end_label_collection(*labels->source));
    detail::agree(
        c, [&] { detail::CsvStreamAccess::use_class_names(*labels->source, labels->names); });
  }
  return part;
}

Standardization fit_standardization(const DatasetPart& part, const Communicator& comm) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  const std::vector<float> shift = first_row_of_whole(
      c, part.rows.rows > 0 ? part.rows.row_features(0) : std::span<const float>(),
      part.rows.feature_count);
  detail::FeatureMoments moments(shift);
  detail::agree(c, [&] { moments.add(part.rows); });
  return merged_result(c, moments, shift);
}

namespace {

// Every rank's words, in rank order, each rank's of any length. Collective.
std::vector<std::vector<std::uint64_t>> gather_words(detail::Communicator& c,
                                                     const std::vector<std::uint64_t>& mine) {
  const std::vector<std::uint64_t> sizes = c.allgather<std::uint64_t>(mine.size());
  std::vector<std::vector<std::uint64_t>> words;
  if (std::all_of(sizes.begin(), sizes.end(), [&](std::uint64_t n) { return n == mine.size(); })) {
    std::vector<std::uint64_t> all(mine.size() * static_cast<std::size_t>(c.size()));
    c.allgather(std::span<const std::uint64_t>(mine), std::span<std::uint64_t>(all));
    for (int r = 0; r < c.size(); ++r) {
      const auto first = all.begin() + static_cast<std::ptrdiff_t>(r * mine.size());
      words.emplace_back(first, first + static_cast<std::ptrdiff_t>(mine.size()));
    }
    return words;
  }
  // Lengths that differ go as bytes, which the communicator gathers at any length.
  std::string bytes(mine.size() * sizeof(std::uint64_t), '\0');
  if (!mine.empty()) std::memcpy(bytes.data(), mine.data(), bytes.size());
  for (const std::string& text : c.allgather_strings(bytes)) {
    std::vector<std::uint64_t>& rank = words.emplace_back(text.size() / sizeof(std::uint64_t));
    if (!rank.empty()) std::memcpy(rank.data(), text.data(), text.size());
  }
  return words;
}

// The fit over every rank's rows; `pass` runs this rank's pass, which may fail on one rank
// (bad input in a stream), so each is agreed on before the words are gathered.
using RowsPass = std::function<void(const std::function<void(const Dataset&)>&)>;

Imputation fit_imputation_collectively(detail::Communicator& c, MissingPolicy policy, int features,
                                       std::vector<std::string> names, const RowsPass& pass,
                                       const RowsPass& sample) {
  detail::ImputationRows rows;
  rows.features = features;
  rows.names = std::move(names);
  rows.pass = [&](const std::function<void(const Dataset&)>& work) {
    detail::agree(c, [&] { pass(work); });
  };
  rows.sample = [&](const std::function<void(const Dataset&)>& work) {
    detail::agree(c, [&] { sample(work); });
  };
  rows.gather = [&](std::vector<std::uint64_t> words) { return gather_words(c, words); };
  try {
    return detail::fit_imputation(policy, rows);
  } catch (const CollectiveError&) {
    throw;
  } catch (const Error& e) {
    // Every rank found the same fault in the same combined statistics.
    if (c.size() == 1 && !c.distributed()) throw;
    throw CollectiveError(e.what());
  }
}

}  // namespace

Imputation fit_imputation(const DatasetPart& part, MissingPolicy policy, const Communicator& comm) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  return fit_imputation_collectively(
      c, policy, part.rows.feature_count, part.rows.feature_names,
      [&](const std::function<void(const Dataset&)>& work) { work(part.rows); },
      [&](const std::function<void(const Dataset&)>& work) {
        work(detail::sample_rows(part.rows));
      });
}

Imputation fit_imputation(DataStream& stream, MissingPolicy policy, const Communicator& comm) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  if (policy == MissingPolicy::error || policy == MissingPolicy::drop) return {policy, {}};
  // The columns, from the first chunk of a rank with rows (every rank learns them).
  Dataset chunk;
  bool any = false;
  detail::agree(c, [&] {
    stream.rewind();
    any = stream.next(chunk);
    stream.rewind();
  });
  const std::vector<std::int64_t> counts = c.allgather<std::int64_t>(any ? chunk.feature_count : 0);
  const std::int64_t features = *std::max_element(counts.begin(), counts.end());
  if (features == 0) {
    throw CollectiveError("imputation: the data has no rows to fit " +
                          std::string(to_string(policy)));
  }
  std::vector<std::string> names;
  for (const std::string& text : c.allgather_strings(encode_names(chunk.feature_names))) {
    if (names.empty()) decode_names(text, names);
  }
  return fit_imputation_collectively(
      c, policy, static_cast<int>(features), names,
      [&](const std::function<void(const Dataset&)>& work) {
        stream.rewind();
        while (stream.next(chunk)) work(chunk);
        stream.rewind();
      },
      [&](const std::function<void(const Dataset&)>& work) {
        // A rank without rows samples none.
        stream.rewind();
        if (!stream.next(chunk)) chunk.rows = 0;
        stream.rewind();
        chunk.feature_count = static_cast<int>(features);
        work(detail::sample_rows(chunk));
      });
}

void use_class_names(DatasetPart& part, const std::vector<std::string>& names,
                     const Communicator& comm) {
  detail::agree(detail::CommunicatorAccess::of(comm), [&] {
    // A rank without rows has no labels of its own to re-index.
    if (part.rows.rows == 0) {
      part.rows.class_names = names;
    } else {
      use_class_names(part.rows, names);
    }
  });
}

std::pair<DatasetPart, DatasetPart> split_validation(const DatasetPart& part, double fraction,
                                                     std::uint64_t seed, const Communicator& comm) {
  detail::Communicator& c = detail::CommunicatorAccess::of(comm);
  const std::uint64_t threshold = detail::split_threshold(fraction);
  std::pair<DatasetPart, DatasetPart> split{DatasetPart{detail::empty_like(part.rows), 0, 0},
                                            DatasetPart{detail::empty_like(part.rows), 0, 0}};
  for (std::int64_t r = 0; r < part.rows.rows; ++r) {
    const bool held_out = detail::held_out(seed, threshold, part.first_row + r);
    detail::append_row(held_out ? split.second.rows : split.first.rows, part.rows, r);
  }
  for (DatasetPart* side : {&split.first, &split.second}) {
    const std::vector<std::int64_t> starts = part_starts(c, side->rows.rows);
    side->first_row = starts[static_cast<std::size_t>(c.rank())];
    side->total_rows = starts.back();
  }
  if (split.second.total_rows == 0 || split.first.total_rows == 0) {
    throw CollectiveError("validation split: a fraction of " + std::to_string(fraction) + " of " +
                          std::to_string(part.total_rows) + " rows held out " +
                          std::to_string(split.second.total_rows) +
                          " rows; both sides need at least one");
  }
  return split;
}

}  // namespace shardprop
