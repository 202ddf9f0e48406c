// CsvStream: a CSV file read block by block. Each block is cut after its last complete record
// (quotes respected), parsed in parallel like read_csv, and the rest moves to the front of the
// buffer for the next block. Memory held: the block buffer (block_bytes, grown only to fit one
// record longer than it) and the parsed rows of one block.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/mapped_file.hpp"
#include "data/csv_chunks.hpp"
#include "data/csv_format.hpp"
#include "data/csv_labels.hpp"
#include "data/csv_parser.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

using detail::ColumnRole;

constexpr std::size_t kPadding = detail::MappedFile::kPadding;

// The offset just past the last '\n' outside quotes in text, or 0. Text starts outside quotes,
// so a position is outside quotes when the quotes before it are even.
std::size_t last_record_end(std::string_view text) {
  std::size_t quotes_after = 0;
  const std::size_t total = detail::count_byte(text, '"');
  for (std::size_t i = text.size(); i-- > 0;) {
    if (text[i] == '"') {
      ++quotes_after;
    } else if (text[i] == '\n' && (total - quotes_after) % 2 == 0) {
      return i + 1;
    }
  }
  return 0;
}

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
  std::unordered_map<std::string, float> class_index;
  bool collect_labels = false;  // collect_class_names' pass: record label texts only
  std::set<std::string> seen_labels;

  int fd = -1;
  std::vector<char> buffer;  // [begin, end) unparsed, then kPadding bytes
  std::size_t begin = 0;
  std::size_t end = 0;
  bool eof = false;
  std::int64_t lines_before = 0;  // lines of the file before buffer[begin]
  bool started = false;           // header read

  std::vector<std::string> names;
  detail::CsvLayout layout;
  Dataset shape;  // names, feature count, target width
  bool has_labels = false;
  std::int64_t label_column = 0;
  std::vector<detail::LabelText> labels;
  Standardization standardization;
  std::size_t peak = 0;

  ~State() {
    if (fd >= 0) ::close(fd);
  }

  void open() {
    if (fd >= 0) ::close(fd);
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(file + ": cannot open: " + std::strerror(errno));
    begin = end = 0;
    eof = false;
    lines_before = 0;
    started = false;
  }

  // Moves the unparsed bytes to the front and reads until the buffer holds `want` bytes or the
  // file ends.
  void fill(std::size_t want) {
    if (begin > 0) {
      lines_before += static_cast<std::int64_t>(
          detail::count_byte(std::string_view(buffer.data(), begin), '\n'));
      std::memmove(buffer.data(), buffer.data() + begin, end - begin);
      end -= begin;
      begin = 0;
    }
    if (buffer.size() < want + kPadding) buffer.resize(want + kPadding);
    while (!eof && end < want) {
      const ssize_t n = ::read(fd, buffer.data() + end, want - end);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error(file + ": cannot read: " + std::strerror(errno));
      }
      if (n == 0) eof = true;
      end += static_cast<std::size_t>(n);
    }
    std::memset(buffer.data() + end, 0, kPadding);
    peak = std::max(peak, buffer.capacity() + held_rows_bytes());
  }

  std::size_t held_rows_bytes() const { return rows_bytes; }
  std::size_t rows_bytes = 0;

  // The header and the column plan, from the first block.
  void start() {
    std::size_t want = block_bytes;
    for (;;) {
      fill(want);
      std::string_view text(buffer.data(), end);
      const std::size_t bom = text.starts_with(detail::kByteOrderMark) ? 3 : 0;
      text.remove_prefix(bom);
      const std::size_t records = detail::records_end(text, options.delimiter);
      if (records == 0 && eof) {
        throw Error(file +
                    (options.header ? ": empty file (a header line is required)" : ": empty file"));
      }
      // The first record must be complete (or the file ends) before it is read.
      if (!eof && last_record_end(text) == 0) {
        want *= 2;
        continue;
      }
      const detail::FirstRecord first =
          detail::read_first_record(text.substr(0, eof ? records : text.size()), file,
                                    options.delimiter, options.header, !options.no_target);
      names = first.fields;
      if (!options.header) {
        for (std::size_t c = 0; c < names.size(); ++c) names[c] = std::to_string(c);
      }
      shape = Dataset{};
      CsvOptions plan = options;
      if (plan.target_kind == TargetKind::automatic) {
        plan.target_kind =
            class_names.empty() && !collect_labels ? TargetKind::numeric : TargetKind::classes;
      }
      layout = detail::plan_columns(names, plan, file, shape);
      const auto label = std::find(layout.roles.begin(), layout.roles.end(), ColumnRole::label);
      has_labels = label != layout.roles.end();
      label_column = static_cast<std::int64_t>(label - layout.roles.begin());
      if (has_labels && class_names.empty() && !collect_labels) {
        throw Error(file +
                    ": streaming class labels needs the class names up front "
                    "(collect_class_names makes them in one pass)");
      }
      begin = bom + (options.header ? first.end : 0);
      started = true;
      return;
    }
  }

  bool next(Dataset& chunk) {
    if (fd < 0) open();
    if (!started) start();
    std::size_t want = block_bytes;
    for (;;) {
      fill(want);
      std::string_view text(buffer.data(), end);
      std::size_t cut = eof ? detail::records_end(text, options.delimiter) : last_record_end(text);
      // Blank lines at the end of a block may be the file's trailing blank lines: keep them for
      // the next block, which knows whether records follow.
      if (!eof) cut = detail::records_end(text.substr(0, cut), options.delimiter);
      if (cut == 0 && eof) return false;
      if (cut == 0) {
        want = std::max(want * 2, end + block_bytes);  // a record longer than the block
        continue;
      }
      parse(std::string_view(buffer.data(), cut), chunk);
      begin = cut;
      return true;
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
    const auto features = static_cast<std::size_t>(shape.feature_count);
    const auto targets = static_cast<std::size_t>(shape.target_width);
    try {
      detail::parse_rows(
          layout, text, records, options.chunk_bytes, report, [&](std::int64_t rows) {
            chunk.rows = rows;
            // Exact sizes: geometric growth would let the held memory creep
            // towards twice a block's rows.
            resize_exactly(chunk.features, static_cast<std::size_t>(rows) * features);
            resize_exactly(chunk.targets, static_cast<std::size_t>(rows) * targets);
            resize_exactly(labels, has_labels ? static_cast<std::size_t>(rows) : 0);
            return detail::CsvRowSink{chunk.features.data(), features,
                                      chunk.targets.data(),  targets,
                                      labels.data(),         has_labels ? 1u : 0u};
          });
    } catch (...) {
      std::memcpy(after, saved, kPadding);
      throw;
    }
    std::memcpy(after, saved, kPadding);
    if (has_labels) map_labels(chunk, report);
    if (!standardization.empty()) standardization.apply(chunk);
    rows_bytes = (chunk.features.capacity() + chunk.targets.capacity()) * sizeof(float) +
                 labels.capacity() * sizeof(detail::LabelText);
    peak = std::max(peak, buffer.capacity() + rows_bytes);
  }

  void map_labels(Dataset& chunk, const detail::FaultReport& report) {
    std::string scratch;
    for (std::size_t r = 0; r < labels.size(); ++r) {
      const detail::LabelText& label = labels[r];
      const char* at = buffer.data() + label.offset;
      std::string text = label.escaped() ? detail::unescape_quotes(at, at + label.size())
                                         : std::string(at, label.size());
      if (collect_labels) {
        seen_labels.insert(std::move(text));
        continue;
      }
      const auto found = class_index.find(text);
      if (found == class_index.end()) {
        throw Error(report.location(at, label_column) + "class label '" + text +
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
  s.file = path.string();
  s.options = options;
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

void CsvStream::set_standardization(Standardization standardization) {
  state_->standardization = std::move(standardization);
}

std::size_t CsvStream::peak_bytes() const { return state_->peak; }

std::vector<std::string> collect_class_names(const std::filesystem::path& path,
                                             const CsvOptions& options) {
  CsvOptions labels = options;
  labels.target_kind = TargetKind::classes;
  CsvStream stream(path, labels);
  stream.state_->collect_labels = true;
  Dataset chunk;
  while (stream.next(chunk)) {
  }
  // Sort as read_csv does: put the distinct labels in one text and let the same code order them.
  std::string text;
  std::vector<detail::LabelText> spans;
  for (const std::string& label : stream.state_->seen_labels) {
    spans.push_back({text.size(), static_cast<std::uint64_t>(label.size()) << 1});
    text += label;
  }
  std::vector<float> indices(spans.size());
  return detail::assign_class_indices(text.data(), spans, indices.data(), 1);
}

}  // namespace shardprop
