// read_csv: map the file, read the header, give each column a role, cut the records into chunks,
// parse the chunks in parallel straight into the output rows, then map class labels. An error is
// reported for the first bad chunk in file order, so it does not depend on chunking or threads.
#include <sys/mman.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "csv_chunks.hpp"
#include "csv_format.hpp"
#include "csv_labels.hpp"
#include "csv_parser.hpp"
#include "mapped_file.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

using detail::ColumnRole;
using detail::CsvFault;
using detail::CsvLayout;
using detail::CsvProblem;
using detail::CsvText;
using detail::FaultReport;
using detail::FirstRecord;
using detail::column_label;
using detail::kByteOrderMark;
using detail::plan_columns;
using detail::read_first_record;
using detail::records_end;

constexpr std::size_t kMaxClasses = std::size_t{1} << 24;  // class indices are exact floats
constexpr std::size_t kNone = static_cast<std::size_t>(-1);

// Sizes `values` to `count` zeros. A large array asks for transparent huge pages before the
// zero fill first touches it: on a 283 MB output that takes 41 ms instead of 105 ms, as there
// are 512 times fewer page faults.
void resize_zeroed(std::vector<float>& values, std::size_t count) {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  if (count * sizeof(float) < 4 * kHugePage) {
    values.resize(count);
    return;
  }
  values.reserve(count);
  const auto first = reinterpret_cast<std::uintptr_t>(values.data());
  const std::uintptr_t begin = (first + kHugePage - 1) / kHugePage * kHugePage;
  const std::uintptr_t end = (first + count * sizeof(float)) / kHugePage * kHugePage;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  values.resize(count);
}

}  // namespace

Dataset read_csv(const std::filesystem::path& path, const CsvOptions& options) {
  const std::string file = path.string();
  const char delimiter = options.delimiter;
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r' || delimiter == '\0') {
    throw Error(file + ": the delimiter cannot be a quote, CR, LF or NUL");
  }
  if (options.chunk_bytes == 0) throw Error(file + ": chunk_bytes must be at least 1");

  const detail::MappedFile mapped(path);
  std::string_view text = mapped.view();
  if (text.starts_with(kByteOrderMark)) text.remove_prefix(kByteOrderMark.size());
  // Trailing blank lines are dropped; what remains ends with '\n' or at the end of the file,
  // where the mapping's zero padding follows.
  text = text.substr(0, records_end(text, delimiter));
  if (text.empty()) {
    throw Error(file +
                (options.header ? ": empty file (a header line is required)" : ": empty file"));
  }

  const FirstRecord first = read_first_record(text, file, delimiter, options.header);
  std::vector<std::string> names = first.fields;
  if (!options.header) {
    for (std::size_t c = 0; c < names.size(); ++c) names[c] = std::to_string(c);
  }
  Dataset data;
  const CsvLayout layout = plan_columns(names, options, file, data);
  const auto columns = static_cast<std::int64_t>(names.size());
  const auto feature_count = static_cast<std::size_t>(data.feature_count);
  const auto target_width = static_cast<std::size_t>(data.target_width);
  const auto label_column = static_cast<std::size_t>(
      std::find_if(layout.roles.begin(), layout.roles.end(),
                   [](ColumnRole role) {
                     return role == ColumnRole::label || role == ColumnRole::number_or_label;
                   }) -
      layout.roles.begin());
  const bool has_labels = label_column < names.size();

  const std::size_t data_begin = options.header ? first.end : 0;
  const std::string_view records = text.substr(data_begin);
  const std::vector<detail::CsvChunk> chunks =
      detail::split_csv_chunks(records, options.chunk_bytes);
  const std::int64_t rows = chunks.empty() ? 0 : chunks.back().first_row + chunks.back().rows;
  data.rows = rows;
  resize_zeroed(data.features, static_cast<std::size_t>(rows) * feature_count);
  resize_zeroed(data.targets, static_cast<std::size_t>(rows) * target_width);
  // Every row's label is written by the parse (no zero fill needed).
  const std::size_t label_rows = has_labels ? static_cast<std::size_t>(rows) : 0;
  const auto labels = std::make_unique_for_overwrite<detail::LabelText[]>(label_rows);

  const CsvText csv_text{text.data(), text.data() + text.size()};
  const char* const base = records.data();
  std::vector<detail::ParsedChunk> parsed(chunks.size());
  std::atomic<std::size_t> first_failed{kNone};
  tbb::parallel_for(
      tbb::blocked_range<std::size_t>(0, chunks.size(), 1),
      [&](const tbb::blocked_range<std::size_t>& range) {
        for (std::size_t k = range.begin(); k != range.end(); ++k) {
          // Chunks after a failed one cannot hold the first error.
          if (k > first_failed.load(std::memory_order_relaxed)) continue;
          const detail::CsvChunk& chunk = chunks[k];
          const auto first_row = static_cast<std::size_t>(chunk.first_row);
          const detail::CsvRowSink sink{
              data.features.data() + first_row * feature_count, feature_count,
              data.targets.data() + first_row * target_width,   target_width,
              has_labels ? labels.get() + first_row : nullptr,  1};
          detail::ParsedChunk& result = parsed[k];
          result = detail::parse_csv_records(layout, csv_text, base + chunk.begin, base + chunk.end,
                                             chunk.rows, sink);
          if (!result.failed && (result.rows != chunk.rows || result.end != base + chunk.end)) {
            result.failed = true;
            result.fault.problem = CsvProblem::chunk_mismatch;
          }
          if (!result.failed) continue;
          std::size_t seen = first_failed.load(std::memory_order_relaxed);
          while (k < seen && !first_failed.compare_exchange_weak(seen, k)) {
          }
        }
      },
      tbb::simple_partitioner());

  const FaultReport report(file, text, &names, columns);
  const std::size_t failed = first_failed.load();
  if (failed != kNone) {
    // Chunks before it parsed cleanly and ended where the next began, so this chunk starts at a
    // true record boundary: parsing on from there one record after another meets the first
    // error of the file (a chunk that merely ended in the wrong place was misled by malformed
    // quoting further on).
    std::vector<float> scratch_features(feature_count);
    std::vector<float> scratch_targets(target_width);
    detail::LabelText scratch_label{};
    const detail::CsvRowSink scratch{scratch_features.data(), 0, scratch_targets.data(), 0,
                                     &scratch_label,          0};
    const detail::ParsedChunk again =
        detail::parse_csv_records(layout, csv_text, base + chunks[failed].begin, csv_text.end,
                                  std::numeric_limits<std::int64_t>::max(), scratch);
    if (!again.failed) {
      throw Error(file + ": internal error: chunk " + std::to_string(failed) +
                  " failed alone but parses in sequence");
    }
    throw Error(report.message(again.fault));
  }

  const bool number_or_label =
      has_labels && layout.roles[label_column] == ColumnRole::number_or_label;
  const bool classes = options.target_kind == TargetKind::classes ||
                       (number_or_label && std::any_of(parsed.begin(), parsed.end(),
                                                       [](const detail::ParsedChunk& chunk) {
                                                         return !chunk.labels_are_numbers;
                                                       }));
  if (classes) {
    data.class_names = detail::assign_class_indices(text.data(), {labels.get(), label_rows},
                                                    data.targets.data(), target_width);
    if (data.class_names.size() > kMaxClasses) {
      throw Error(file + ": " + std::to_string(data.class_names.size()) +
                  " distinct class labels in " + column_label(label_column, names) + "; at most " +
                  std::to_string(kMaxClasses) + " are supported");
    }
  } else if (number_or_label) {
    // A numeric target column: its nan, inf or overflowing values are errors after all.
    for (const detail::ParsedChunk& chunk : parsed) {
      if (chunk.has_non_finite_label) throw Error(report.message(chunk.non_finite_label));
    }
  }
  return data;
}

}  // namespace shardprop
