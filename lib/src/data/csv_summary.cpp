// summarize_csv: the file is read block by block (CsvStream's way: each block cut after its last
// complete record), each block cut into chunks at record starts (csv_chunks) and its chunks
// summarized in parallel, then merged in chunk order, so that the result does not depend on the
// threads. Fields are split with the reader's scanner, so quoting and field counts follow
// read_csv's rules and messages; values are not stored, only per-column statistics.
#include "shardprop/csv_summary.hpp"

#include <fcntl.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "data/csv_chunks.hpp"
#include "data/csv_format.hpp"
#include "data/csv_number.hpp"
#include "data/csv_parser.hpp"
#include "data/csv_summary.hpp"
#include "data/input_source.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

using detail::CsvFault;
using detail::CsvProblem;

constexpr std::size_t kPadding = 64;  // zeros after the bytes read: parse_short_float reads ahead
constexpr std::size_t kNone = static_cast<std::size_t>(-1);

struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};
using Counts = std::unordered_map<std::string, std::int64_t, TextHash, std::equal_to<>>;

struct ColumnStats {
  std::int64_t missing = 0;
  std::int64_t values = 0;   // not missing
  std::int64_t numbers = 0;  // values that are numbers
  std::int64_t finite = 0;   // numbers in sum, min and max
  bool integer_texts = true;
  double sum = 0.0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  bool exceeded = false;
  Counts counts;  // distinct texts, until there are too many

  void count(std::string_view text, std::int64_t times) {
    if (exceeded) return;
    const auto found = counts.find(text);
    if (found != counts.end()) {
      found->second += times;
    } else if (static_cast<std::int64_t>(counts.size()) < kCsvSummaryMaxDistinct) {
      counts.emplace(text, times);
    } else {
      exceeded = true;
      counts = Counts();
    }
  }

  // `later`'s fields follow this one's.
  void merge(const ColumnStats& later) {
    missing += later.missing;
    values += later.values;
    numbers += later.numbers;
    finite += later.finite;
    integer_texts = integer_texts && later.integer_texts;
    sum += later.sum;
    min = std::min(min, later.min);
    max = std::max(max, later.max);
    if (later.exceeded && !exceeded) {
      exceeded = true;
      counts = Counts();
    }
    for (const auto& [text, times] : later.counts) count(text, times);
  }
};

// Field texts that mean a missing value; lengths first, as most fields are none of them.
class MissingTexts {
 public:
  explicit MissingTexts(const std::vector<std::string>& texts) : texts_(texts) {
    for (const std::string& text : texts) {
      if (text.size() < 64) lengths_ |= std::uint64_t{1} << text.size();
    }
  }
  bool contains(std::string_view text) const {
    if (text.size() >= 64 || ((lengths_ >> text.size()) & 1) == 0) return false;
    return std::find(texts_.begin(), texts_.end(), text) != texts_.end();
  }

 private:
  std::vector<std::string> texts_;
  std::uint64_t lengths_ = 0;
};

struct Scan {
  char delimiter = ',';
  char comment = '\0';
  bool allow_non_finite = false;
  std::size_t columns = 0;
  const MissingTexts* missing = nullptr;
};

struct ChunkSummary {
  std::vector<ColumnStats> columns;
  std::int64_t rows = 0;
  const char* end = nullptr;  // where the next record would start
  bool failed = false;
  CsvFault fault;
};

bool blank(char c, char delimiter) { return (c == ' ' || c == '\t') && c != delimiter; }

bool integer_text(std::string_view text) {
  std::size_t i = !text.empty() && (text[0] == '-' || text[0] == '+') ? 1 : 0;
  if (i == text.size()) return false;
  for (; i < text.size(); ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
  }
  return true;
}

void add_field(const Scan& scan, const detail::CsvField& field, ColumnStats& stats,
               std::string& unescaped) {
  const char* begin = field.begin;
  const char* end = field.end;
  while (begin < end && blank(*begin, scan.delimiter)) ++begin;
  while (end > begin && blank(end[-1], scan.delimiter)) --end;
  std::string_view text(begin, static_cast<std::size_t>(end - begin));
  if (field.escaped) {
    unescaped = detail::unescape_quotes(begin, end);
    text = unescaped;
  }
  if (scan.missing->contains(text)) {
    ++stats.missing;
    return;
  }
  ++stats.values;
  float value = 0.0f;
  const detail::NumberStatus status = field.escaped || text.empty()
                                          ? detail::NumberStatus::not_a_number
                                          : detail::parse_float(begin, end, value);
  if (status == detail::NumberStatus::finite) {
    ++stats.numbers;
    ++stats.finite;
    stats.sum += value;
    stats.min = std::min(stats.min, static_cast<double>(value));
    stats.max = std::max(stats.max, static_cast<double>(value));
    if (stats.integer_texts) stats.integer_texts = integer_text(text);
  } else if (status == detail::NumberStatus::non_finite && scan.allow_non_finite) {
    ++stats.numbers;
    stats.integer_texts = false;
  }
  stats.count(text, 1);
}

// Summarizes records from `begin` (a record start) while fewer than max_rows are done and the
// next starts before `stop`; comment lines are skipped. Stops at the first fault.
ChunkSummary summarize_records(const Scan& scan, const char* begin, const char* stop,
                               const char* end, std::int64_t max_rows) {
  ChunkSummary result;
  result.columns.resize(scan.columns);
  std::string unescaped;
  const char* p = begin;
  for (;;) {
    while (scan.comment != '\0' && p < stop && *p == scan.comment) {
      const void* found = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
      const char* line_end = found == nullptr ? end : static_cast<const char*>(found);
      if ((detail::count_byte({p, static_cast<std::size_t>(line_end - p)}, '"') & 1) != 0) {
        result.failed = true;
        result.fault = {CsvProblem::comment_quote, p, p, nullptr, nullptr, 0, 0};
        result.end = p;
        return result;
      }
      p = found == nullptr ? end : line_end + 1;
    }
    if (result.rows == max_rows || p >= stop) break;
    const char* const record = p;
    std::size_t column = 0;
    bool first_blank = false;
    for (;;) {
      const detail::CsvField field = detail::scan_csv_field(p, end, scan.delimiter);
      if (!field.ok) {
        result.failed = true;
        result.fault = {
            field.problem, record, p, field.begin, field.end, static_cast<std::int64_t>(column), 0};
        result.end = record;
        return result;
      }
      if (column == 0) first_blank = !field.quoted && field.begin == field.end;
      if (column < scan.columns) add_field(scan, field, result.columns[column], unescaped);
      ++column;
      if (field.terminator < end && *field.terminator == scan.delimiter) {
        p = field.terminator + 1;
        continue;
      }
      p = field.terminator < end ? field.terminator + 1 : end;
      break;
    }
    if (column == 1 && first_blank) {
      result.failed = true;
      result.fault = {CsvProblem::blank_line, record, record, nullptr, nullptr, 0, 1};
      result.end = record;
      return result;
    }
    if (column != scan.columns) {
      result.failed = true;
      result.fault = {CsvProblem::field_count,          record, record, nullptr, nullptr, 0,
                      static_cast<std::int64_t>(column)};
      result.end = record;
      return result;
    }
    ++result.rows;
  }
  result.end = p;
  return result;
}

// The records of one block, summarized in parallel chunks and merged in order into `total`.
void summarize_block(const Scan& scan, std::string_view records, std::size_t chunk_bytes,
                     const detail::FaultReport& report, std::vector<ColumnStats>& total,
                     std::int64_t& rows) {
  const std::vector<detail::CsvChunk> chunks =
      detail::split_csv_chunks(records, chunk_bytes, scan.comment);
  const char* const base = records.data();
  const char* const end = base + records.size();
  std::vector<ChunkSummary> parts(chunks.size());
  std::atomic<std::size_t> first_failed{kNone};
  tbb::parallel_for(
      tbb::blocked_range<std::size_t>(0, chunks.size(), 1),
      [&](const tbb::blocked_range<std::size_t>& range) {
        for (std::size_t k = range.begin(); k != range.end(); ++k) {
          if (k > first_failed.load(std::memory_order_relaxed)) continue;
          const detail::CsvChunk& chunk = chunks[k];
          ChunkSummary& part = parts[k];
          part = summarize_records(scan, base + chunk.begin, base + chunk.end, end, chunk.rows);
          if (!part.failed && (part.rows != chunk.rows || part.end != base + chunk.end)) {
            part.failed = true;
          }
          if (!part.failed) continue;
          std::size_t seen = first_failed.load(std::memory_order_relaxed);
          while (k < seen && !first_failed.compare_exchange_weak(seen, k)) {
          }
        }
      },
      tbb::simple_partitioner());
  const std::size_t failed = first_failed.load();
  if (failed != kNone) {
    // As in read_csv: from the first failed chunk, a true record start, record by record.
    const ChunkSummary again = summarize_records(scan, base + chunks[failed].begin, end, end,
                                                 std::numeric_limits<std::int64_t>::max());
    throw Error(report.message(again.failed ? again.fault : CsvFault{CsvProblem::chunk_mismatch}));
  }
  for (const ChunkSummary& part : parts) {
    rows += part.rows;
    for (std::size_t c = 0; c < total.size(); ++c) total[c].merge(part.columns[c]);
  }
}

CsvColumnSummary finish(std::string name, const ColumnStats& stats) {
  CsvColumnSummary column;
  column.name = std::move(name);
  column.missing = stats.missing;
  if (stats.values == 0) {
    column.type = CsvColumnType::empty;
  } else if (stats.numbers == stats.values) {
    column.type = stats.integer_texts ? CsvColumnType::integer : CsvColumnType::number;
  } else {
    column.type = CsvColumnType::text;
  }
  if (column.type != CsvColumnType::text && stats.finite > 0) {
    column.min = stats.min;
    column.max = stats.max;
    column.mean = stats.sum / static_cast<double>(stats.finite);
  }
  column.distinct_exceeded = stats.exceeded;
  if (!stats.exceeded) {
    column.distinct = static_cast<std::int64_t>(stats.counts.size());
    std::vector<std::pair<std::string, std::int64_t>> all(stats.counts.begin(), stats.counts.end());
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (all.size() > kCsvSummaryTopCategories) all.resize(kCsvSummaryTopCategories);
    column.top = std::move(all);
  }
  return column;
}

}  // namespace

const char* to_string(CsvColumnType type) {
  switch (type) {
    case CsvColumnType::integer:
      return "integer";
    case CsvColumnType::number:
      return "number";
    case CsvColumnType::text:
      return "text";
    case CsvColumnType::empty:
      return "empty";
  }
  return "?";
}

CsvSummary summarize_csv(const std::filesystem::path& path, const CsvOptions& options) {
  return detail::summarize_csv(path, options, detail::kSummaryBlockBytes);
}

namespace detail {

CsvSummary summarize_csv(const std::filesystem::path& path, const CsvOptions& options,
                         std::size_t block_bytes) {
  const std::size_t block = std::max<std::size_t>(block_bytes, 1);
  const std::string file = path.string();
  detail::check_csv_options(file, options);
  // Plain, gzip or zstd, or "-" for standard input; compressed input is decompressed a block
  // ahead of the summary.
  const std::unique_ptr<detail::InputSource> input = detail::InputSource::open(path, block);

  // [begin, end) of buffer not yet summarized, then kPadding zeros.
  std::vector<char> buffer;
  std::size_t begin = 0;
  std::size_t end = 0;
  bool eof = false;
  std::int64_t lines_before = 0;  // lines of the file before buffer[0]
  auto fill = [&](std::size_t want) {
    if (begin > 0) {
      lines_before += static_cast<std::int64_t>(detail::count_byte({buffer.data(), begin}, '\n'));
      std::memmove(buffer.data(), buffer.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    if (buffer.size() < want + kPadding) buffer.resize(want + kPadding);
    while (!eof && end < want) {
      const std::size_t n = input->read(buffer.data() + end, want - end);
      if (n == 0) eof = true;
      end += n;
    }
    std::memset(buffer.data() + end, 0, kPadding);
  };

  // The header: skipped lines, comment lines and the first record complete, as CsvStream.
  std::vector<std::string> names;
  for (std::size_t want = block;; want *= 2) {
    fill(want);
    const std::string_view bytes(buffer.data(), end);
    std::string_view text = bytes;
    if (text.starts_with(detail::kByteOrderMark)) text.remove_prefix(detail::kByteOrderMark.size());
    const detail::CsvPreamble preamble = detail::skip_csv_preamble(text, eof, file, options);
    const std::string_view first = text.substr(preamble.end);
    if (!eof && (!preamble.complete ||
                 detail::last_record_end(first, detail::count_byte(first, '"')) == 0 ||
                 detail::records_end(first, options.delimiter, options.comment) == 0)) {
      continue;
    }
    const detail::CsvRecordsRegion region = detail::find_csv_records(bytes, eof, file, options);
    names = region.names;
    begin = region.offset + region.begin;
    break;
  }

  CsvSummary summary;
  Dataset shape;
  CsvOptions plan = options;
  plan.target_kind = TargetKind::numeric;
  const detail::CsvLayout layout = detail::plan_columns(names, plan, file, shape);

  const MissingTexts missing(options.na_values);
  Scan scan;
  scan.delimiter = options.delimiter;
  scan.comment = options.comment;
  scan.allow_non_finite = options.allow_non_finite;
  scan.columns = names.size();
  scan.missing = &missing;
  std::vector<ColumnStats> total(names.size());
  for (std::size_t want = block;;) {
    fill(want);
    const std::string_view text(buffer.data(), end);
    std::size_t cut = eof ? detail::records_end(text, options.delimiter, options.comment)
                          : detail::last_record_end(text, detail::count_byte(text, '"'));
    // Blank lines at the end of a block may be the file's trailing ones: the next block knows.
    if (!eof) cut = detail::records_end(text.substr(0, cut), options.delimiter, options.comment);
    if (cut == 0 && eof) break;
    if (cut == 0) {
      want = std::max(want * 2, end + block);  // a record longer than the block
      continue;
    }
    const std::string_view records = text.substr(0, cut);
    const detail::FaultReport report(file, records, &names, static_cast<std::int64_t>(names.size()),
                                     lines_before);
    summarize_block(scan, records, options.chunk_bytes, report, total, summary.rows);
    begin = cut;
    want = block;
  }

  for (std::size_t c = 0; c < names.size(); ++c) {
    summary.columns.push_back(finish(names[c], total[c]));
    const detail::ColumnRole role = layout.roles[c];
    const bool target = role == detail::ColumnRole::target || role == detail::ColumnRole::label ||
                        role == detail::ColumnRole::number_or_label;
    summary.columns.back().target = target;
    if (target && summary.target < 0) summary.target = static_cast<std::int64_t>(c);
  }
  return summary;
}

}  // namespace detail

}  // namespace shardprop
