// CsvStream: a CSV file read block by block. Each block is cut after its last complete record
// (quotes respected), parsed in parallel like read_csv, and the rest moves to the front of the
// buffer for the next block. Memory held: the block buffer (block_bytes, grown only to fit one
// record longer than it) and the parsed rows of one block. A stream of one part of a file
// (csv_part.hpp) starts reading just before its nominal range and stops after its last record.
// The bytes come from an InputSource: compressed input is decompressed a few blocks ahead by a
// thread of its own while a block is parsed.
#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/mapped_file.hpp"
#include "data/csv_categorical.hpp"
#include "data/csv_chunks.hpp"
#include "data/csv_format.hpp"
#include "data/csv_labels.hpp"
#include "data/csv_parser.hpp"
#include "data/csv_part.hpp"
#include "data/imputation_fit.hpp"
#include "data/input_source.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

using detail::ColumnRole;

constexpr std::size_t kPadding = detail::MappedFile::kPadding;

template <class T>
void resize_exactly(std::vector<T>& values, std::size_t size) {
  if (size > values.capacity()) {
    values.clear();
    values.shrink_to_fit();
    values.reserve(size);
  }
  values.resize(size);
}

}  // namespace

struct CsvStream::State {
  std::filesystem::path path;
  std::string file;
  CsvOptions options;
  std::size_t block_bytes;
  std::vector<std::string> class_names;
  // Looked up by the label's bytes in the block, without a string per row.
  struct LabelHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };
  std::unordered_map<std::string, float, LabelHash, std::equal_to<>> class_index;
  bool collect_labels = false;  // collect_class_names' pass: record label texts only
  std::set<std::string, std::less<>> seen_labels;
  // Categorical columns: encoded with options.categories, or, in collect_categories' pass,
  // counted into category_counts (targets are not read then).
  bool collect_categories = false;
  detail::CategoryCounts category_counts;
  std::vector<detail::LabelText> categories;

  std::unique_ptr<detail::InputSource> source;
  std::vector<char> buffer;  // [begin, end) unparsed, then kPadding bytes
  std::size_t begin = 0;
  std::size_t end = 0;
  bool eof = false;
  std::int64_t lines_before = 0;  // lines of the file before buffer[0]
  // The '\n' in buffer[0, counted_begin), when next() counted them with the block's quotes.
  static constexpr std::size_t kNotCounted = static_cast<std::size_t>(-1);
  std::size_t counted_begin = kNotCounted;
  std::size_t counted_newlines = 0;
  std::uint64_t buffer_offset = 0;  // of buffer[0] in the file
  bool started = false;             // header read

  // Streaming one part of the file: reading stops at the end of the records, and the stream
  // ends with the part's last record.
  bool is_part = false;
  detail::CsvPartRange part;
  detail::CsvPartScan before;
  std::uint64_t limit = std::numeric_limits<std::uint64_t>::max();  // file offset reads stop at
  bool part_done = false;

  std::vector<std::string> names;
  detail::CsvLayout layout;
  Dataset shape;  // names, feature count, target width
  bool has_labels = false;
  std::int64_t label_column = 0;
  std::vector<detail::LabelText> labels;
  Imputation imputation;
  Standardization standardization;
  std::int64_t dropped = 0;  // rows left out by MissingPolicy::drop in the latest pass
  std::size_t peak = 0;

  // The first time opens the input; later, starts it again (standard input cannot, once read).
  void open() {
    if (source == nullptr) {
      source = detail::InputSource::open(path, block_bytes);
    } else {
      source->rewind();
    }
    begin = end = 0;
    eof = false;
    lines_before = 0;
    counted_begin = kNotCounted;
    buffer_offset = 0;
    started = false;
    part_done = false;
  }

  // Moves the unparsed bytes to the front and reads until the buffer holds `want` bytes or the
  // file ends.
  void fill(std::size_t want) {
    if (begin > 0) {
      lines_before += static_cast<std::int64_t>(
          begin == counted_begin
              ? counted_newlines
              : detail::count_byte(std::string_view(buffer.data(), begin), '\n'));
      counted_begin = kNotCounted;
      std::memmove(buffer.data(), buffer.data() + begin, end - begin);
      end -= begin;
      buffer_offset += begin;
      begin = 0;
    }
    if (buffer.size() < want + kPadding) buffer.resize(want + kPadding);
    while (!eof && end < want) {
      const std::uint64_t left = limit - (buffer_offset + end);
      if (left == 0) {
        eof = true;
        break;
      }
      const std::size_t n = source->read(
          buffer.data() + end, static_cast<std::size_t>(std::min<std::uint64_t>(want - end, left)));
      if (n == 0) eof = true;
      end += n;
    }
    std::memset(buffer.data() + end, 0, kPadding);
    peak = std::max(peak, buffer.capacity() + held_rows_bytes() + source->held_bytes());
  }

  std::size_t held_rows_bytes() const { return rows_bytes; }
  std::size_t rows_bytes = 0;

  // The header and the column plan, from the first block.
  void start() {
    if (is_part) {
      plan(part.names);
      start_part();
      started = true;
      return;
    }
    std::size_t want = block_bytes;
    for (;;) {
      fill(want);
      const std::string_view bytes(buffer.data(), end);
      std::string_view text = bytes;
      if (text.starts_with(detail::kByteOrderMark))
        text.remove_prefix(detail::kByteOrderMark.size());
      // The skipped lines, comment lines and first record must be complete (or the file ends)
      // before it is read; and blank lines alone may be all the file holds, which read_csv calls
      // an empty file.
      const detail::CsvPreamble preamble = detail::skip_csv_preamble(text, eof, file, options);
      const std::string_view first = text.substr(preamble.end);
      if (!eof && (!preamble.complete ||
                   detail::last_record_end(first, detail::count_byte(first, '"')) == 0 ||
                   detail::records_end(first, options.delimiter, options.comment) == 0)) {
        want *= 2;
        continue;
      }
      const detail::CsvRecordsRegion region = detail::find_csv_records(bytes, eof, file, options);
      plan(region.names);
      begin = region.offset + region.begin;
      started = true;
      return;
    }
  }

  void plan(std::vector<std::string> column_names) {
    names = std::move(column_names);
    shape = Dataset{};
    CsvOptions plan = options;
    if (plan.target_kind == TargetKind::automatic) {
      plan.target_kind =
          class_names.empty() && !collect_labels ? TargetKind::numeric : TargetKind::classes;
    }
    layout = detail::plan_columns(names, plan, file, shape);
    if (!layout.category_columns.empty()) {
      if (collect_categories) {
        // Only the category texts matter: the targets are skipped, whatever they hold.
        for (ColumnRole& role : layout.roles) {
          if (role != ColumnRole::feature && role != ColumnRole::category) {
            role = ColumnRole::ignored;
          }
        }
        category_counts.assign(layout.category_columns.size(), {});
      } else {
        if (options.categories.empty()) {
          throw Error(file +
                      ": streaming categorical columns needs their categories up front "
                      "(collect_categories makes them in one pass)");
        }
        detail::set_encoded_shape(shape, layout,
                                  detail::given_vocabularies(file, shape.categorical, options));
        // The parse writes the encoded rows itself, numbers and one-hot inputs.
        layout = detail::encoded_row_layout(layout, shape.categorical,
                                            detail::CategoryEncoding::in_parse);
      }
    }
    const auto label = std::find(layout.roles.begin(), layout.roles.end(), ColumnRole::label);
    has_labels = label != layout.roles.end();
    label_column = static_cast<std::int64_t>(label - layout.roles.begin());
    if (has_labels && class_names.empty() && !collect_labels) {
      throw Error(file +
                  ": streaming class labels needs the class names up front "
                  "(collect_class_names makes them in one pass)");
    }
  }

  // Finds the part's first record: the first record start at or after its nominal begin.
  // Reading starts one byte early, as a '\n' there makes the begin itself a record start.
  void start_part() {
    const bool at_records_begin = part.begin == part.records_begin;
    const std::uint64_t origin = at_records_begin ? part.begin : part.begin - 1;
    source->seek(origin);
    buffer_offset = origin;
    limit = part.records_end;
    lines_before = part.header_lines + static_cast<std::int64_t>(before.newlines);
    if (part.begin == part.end) {
      part_done = true;
      return;
    }
    if (at_records_begin) return;
    // A record start in [begin, end) follows a '\n' in [begin - 1, end - 1).
    const std::uint64_t search_end = part.end - 1 - origin;
    std::size_t want = block_bytes;
    for (;;) {
      fill(want);
      const std::size_t to = static_cast<std::size_t>(std::min<std::uint64_t>(end, search_end));
      const bool inside_quotes = ((before.quotes - (buffer[0] == '"' ? 1 : 0)) & 1) != 0;
      const std::size_t first =
          detail::next_record_start({buffer.data(), end}, 0, to, inside_quotes);
      if (first != detail::kNoRecordStart) {
        if (buffer[0] == '\n') --lines_before;  // before.newlines counted it
        begin = first;
        return;
      }
      if (to == search_end || eof) {
        part_done = true;
        return;
      }
      want = std::max(want * 2, end + block_bytes);  // a record longer than the block
    }
  }

  // The cut of a part's block moves back to the part's end when the block holds it: the first
  // record start at or after the nominal end. text[0] is a record of the part.
  std::size_t part_cut(std::string_view text, std::size_t cut) {
    const std::uint64_t from = part.end - 1 - buffer_offset;
    if (from >= text.size()) return cut;
    const auto at = static_cast<std::size_t>(from);
    const bool inside_quotes = (detail::count_byte(text.substr(0, at), '"') & 1) != 0;
    const std::size_t stop = detail::next_record_start(text, at, text.size(), inside_quotes);
    // Past the cut, blank lines held back come first (an error the next block reports).
    if (stop == detail::kNoRecordStart || stop > cut) return cut;
    part_done = true;
    return stop;
  }

  bool next(Dataset& chunk) {
    if (source == nullptr) open();
    if (!started) {
      dropped = 0;
      start();
    }
    if (part_done) return false;
    std::size_t want = block_bytes;
    for (;;) {
      fill(want);
      std::string_view text(buffer.data(), end);
      // One count of the block's quotes and line ends, in parallel: the quotes place the cut,
      // the line ends number the next block's lines.
      const detail::QuoteAndNewlineCounts counts =
          detail::count_quotes_and_newlines_in_parallel(text);
      std::size_t cut = eof ? detail::records_end(text, options.delimiter, options.comment)
                            : detail::last_record_end(text, counts.quotes);
      // Blank lines at the end of a block may be the file's trailing blank lines: keep them for
      // the next block, which knows whether records follow.
      if (!eof) cut = detail::records_end(text.substr(0, cut), options.delimiter, options.comment);
      if (is_part) cut = part_cut(text, cut);
      if (cut == 0 && eof) return false;
      if (cut == 0) {
        want = std::max(want * 2, end + block_bytes);  // a record longer than the block
        continue;
      }
      parse(std::string_view(buffer.data(), cut), chunk);
      begin = cut;
      counted_begin = cut;
      counted_newlines = counts.newlines - detail::count_byte(text.substr(cut), '\n');
      if (chunk.rows > 0) return true;
      // A block of comment lines only, or of rows all dropped (MissingPolicy::drop): on to
      // the next one.
      if (part_done) return false;
      want = block_bytes;
    }
  }

  void parse(std::string_view records, Dataset& chunk) {
    // The parser may look kPadding bytes past the records: make them zeros, as after a file.
    char saved[kPadding];
    char* after = buffer.data() + records.size();
    std::memcpy(saved, after, kPadding);
    std::memset(after, 0, kPadding);
    const detail::CsvText text{buffer.data(), buffer.data() + records.size()};
    const detail::FaultReport report(file, records, &names, static_cast<std::int64_t>(names.size()),
                                     lines_before);
    chunk.feature_count = shape.feature_count;
    chunk.target_width = shape.target_width;
    chunk.feature_names = shape.feature_names;
    chunk.target_names = shape.target_names;
    chunk.class_names = class_names;
    chunk.categorical = shape.categorical;
    chunk.unseen_category_rows = 0;
    const std::size_t category_columns = layout.category_columns.size();
    // Encoding rows (CategoryInputs in the layout): the parse fills the one-hot inputs of
    // zeroed rows. Collecting categories: the parse records the texts.
    const bool encode = layout.category_inputs != nullptr;
    const std::size_t recorded = collect_categories ? category_columns : 0;
    const auto features = static_cast<std::size_t>(shape.feature_count);
    const auto targets = static_cast<std::size_t>(shape.target_width);
    std::vector<detail::ParsedChunk> parsed;
    try {
      parsed = detail::parse_rows(
          layout, text, records, options.chunk_bytes, report, [&](std::int64_t rows) {
            chunk.rows = rows;
            // Exact sizes: geometric growth would let the held memory creep
            // towards twice a block's rows.
            resize_exactly(chunk.features, static_cast<std::size_t>(rows) * features);
            if (encode) std::fill(chunk.features.begin(), chunk.features.end(), 0.0f);
            resize_exactly(chunk.targets, static_cast<std::size_t>(rows) * targets);
            resize_exactly(labels, has_labels ? static_cast<std::size_t>(rows) : 0);
            resize_exactly(categories, static_cast<std::size_t>(rows) * recorded);
            return detail::CsvRowSink{chunk.features.data(), features,
                                      chunk.targets.data(),  targets,
                                      labels.data(),         has_labels ? 1u : 0u,
                                      categories.data(),     recorded};
          });
    } catch (...) {
      std::memcpy(after, saved, kPadding);
      throw;
    }
    if (collect_categories && category_columns > 0) {
      const detail::CategoryCells cells{buffer.data(), categories.data(), chunk.rows,
                                        category_columns};
      detail::count_categories(cells, options, category_counts);
    }
    for (const detail::ParsedChunk& piece : parsed) {
      chunk.unseen_category_rows += piece.unseen_category_rows;
    }
    std::memcpy(after, saved, kPadding);
    if (layout.missing == MissingPolicy::drop) {
      dropped += detail::drop_missing_rows(chunk, has_labels ? labels.data() : nullptr);
      if (has_labels) labels.resize(static_cast<std::size_t>(chunk.rows));
    }
    if (has_labels) map_labels(chunk, report);
    imputation.apply(chunk);
    if (!standardization.empty()) standardization.apply(chunk);
    rows_bytes = (chunk.features.capacity() + chunk.targets.capacity()) * sizeof(float) +
                 (labels.capacity() + categories.capacity()) * sizeof(detail::LabelText);
    peak = std::max(peak, buffer.capacity() + rows_bytes + source->held_bytes());
  }

  void map_labels(Dataset& chunk, const detail::FaultReport& report) {
    std::string unescaped;
    for (std::size_t r = 0; r < labels.size(); ++r) {
      const detail::LabelText& label = labels[r];
      const char* at = buffer.data() + label.offset;
      std::string_view text(at, label.size());
      if (label.escaped()) {
        unescaped = detail::unescape_quotes(at, at + label.size());
        text = unescaped;
      }
      if (collect_labels) {
        if (seen_labels.find(text) == seen_labels.end()) seen_labels.emplace(text);
        continue;
      }
      const auto found = class_index.find(text);
      if (found == class_index.end()) {
        throw Error(report.location(at, label_column) + "class label '" + std::string(text) +
                    "' is not one of the " + std::to_string(class_names.size()) + " known classes");
      }
      chunk.targets[r * static_cast<std::size_t>(chunk.target_width)] = found->second;
    }
  }
};

CsvStream::CsvStream(const std::filesystem::path& path, const CsvOptions& options,
                     std::vector<std::string> class_names, std::size_t block_bytes)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.path = path;
  s.file = detail::input_name(path);
  s.options = options;
  detail::check_csv_options(s.file, options);  // as read_csv does, before the file is opened
  if (block_bytes == 0) throw Error(s.file + ": the stream's block size must be at least 1 byte");
  s.block_bytes = block_bytes;
  s.class_names = std::move(class_names);
  for (std::size_t i = 0; i < s.class_names.size(); ++i) {
    s.class_index.emplace(s.class_names[i], static_cast<float>(i));
  }
  s.open();
}

CsvStream::~CsvStream() = default;

void CsvStream::rewind() {
  state_->open();
  state_->rows_bytes = 0;
}

bool CsvStream::next(Dataset& chunk) { return state_->next(chunk); }

void CsvStream::set_imputation(Imputation imputation) {
  state_->imputation = std::move(imputation);
}

void CsvStream::set_standardization(Standardization standardization) {
  state_->standardization = std::move(standardization);
}

std::int64_t CsvStream::dropped_rows() const { return state_->dropped; }

std::size_t CsvStream::peak_bytes() const { return state_->peak; }

std::vector<CategoricalColumn> collect_categories(const std::filesystem::path& path,
                                                  const CsvOptions& options) {
  CsvOptions plan = options;
  plan.categories.clear();
  CsvStream stream(path, plan);
  std::vector<CategoricalColumn> vocabularies = detail::CsvStreamAccess::collect_categories(stream);
  detail::check_category_cap(path.string(), vocabularies, options.max_categories);
  return vocabularies;
}

std::vector<std::string> collect_class_names(const std::filesystem::path& path,
                                             const CsvOptions& options) {
  CsvOptions labels = options;
  labels.target_kind = TargetKind::classes;
  CsvStream stream(path, labels);
  return detail::CsvStreamAccess::collect_class_names(stream);
}

namespace detail {

void CsvStreamAccess::restrict_to_part(CsvStream& stream, CsvPartRange range, CsvPartScan before) {
  CsvStream::State& s = *stream.state_;
  s.is_part = true;
  s.part = std::move(range);
  s.before = before;
}

std::vector<std::string> CsvStreamAccess::collect_class_names(CsvStream& stream) {
  begin_label_collection(stream);
  Dataset chunk;
  while (stream.next(chunk)) {
  }
  return end_label_collection(stream);
}

std::vector<CategoricalColumn> CsvStreamAccess::collect_categories(CsvStream& stream) {
  CsvStream::State& s = *stream.state_;
  s.collect_categories = true;
  s.open();
  Dataset chunk;
  while (stream.next(chunk)) {
  }
  std::vector<CategoricalColumn> vocabularies =
      detail::category_vocabularies(s.shape.categorical, s.category_counts);
  s.collect_categories = false;
  s.category_counts.clear();
  s.open();
  return vocabularies;
}

void CsvStreamAccess::begin_label_collection(CsvStream& stream) {
  CsvStream::State& s = *stream.state_;
  if (s.options.target_kind != TargetKind::classes || !s.class_names.empty()) {
    throw Error(s.file +
                ": collecting class labels needs a stream of class labels made "
                "without class names");
  }
  s.collect_labels = true;
  s.seen_labels.clear();
}

std::vector<std::string> CsvStreamAccess::end_label_collection(CsvStream& stream) {
  CsvStream::State& s = *stream.state_;
  std::vector<std::string> names(s.seen_labels.begin(), s.seen_labels.end());
  sort_class_labels(names);
  s.seen_labels.clear();
  return names;
}

void CsvStreamAccess::use_class_names(CsvStream& stream, std::vector<std::string> names) {
  CsvStream::State& s = *stream.state_;
  s.collect_labels = false;
  s.class_names = std::move(names);
  s.class_index.clear();
  for (std::size_t i = 0; i < s.class_names.size(); ++i) {
    s.class_index.emplace(s.class_names[i], static_cast<float>(i));
  }
  s.open();  // the column plan is made again, for targets
  s.rows_bytes = 0;
}

}  // namespace detail

}  // namespace shardprop
