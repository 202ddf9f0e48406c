// Header, column plan and fault messages shared by read_csv and CsvStream.
#include "data/csv_format.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <limits>
#include <system_error>
#include <utility>

#include "data/csv_chunks.hpp"
#include "data/csv_number.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

constexpr std::size_t kShownBytes = 40;  // of a bad value, in a message
constexpr std::size_t kMaxColumns = std::size_t{1} << 30;
constexpr std::size_t kNone = static_cast<std::size_t>(-1);

}  // namespace

std::size_t records_end(std::string_view text, char delimiter, char comment) {
  std::size_t last = text.size();
  for (;;) {
    while (last > 0) {
      const char c = text[last - 1];
      const bool blank = (c == ' ' || c == '\t') && c != delimiter;
      if (!blank && c != '\r' && c != '\n') break;
      --last;
    }
    if (last == 0 || comment == '\0') break;
    // The last line with something in it: a comment line is left out too.
    const std::size_t newline = text.rfind('\n', last - 1);
    const std::size_t start = newline == std::string_view::npos ? 0 : newline + 1;
    const std::string_view line = text.substr(start, last - start);
    if (line.front() != comment || (count_byte(line, '"') & 1) != 0) break;
    last = start;
  }
  if (last == 0) return 0;
  const std::size_t newline = text.find('\n', last);
  return newline == std::string_view::npos ? text.size() : newline + 1;
}

// Bytes of a field for a message: at most kShownBytes, line ends made visible.
static std::string shown(const char* begin, const char* end) {
  std::size_t size = static_cast<std::size_t>(end - begin);
  const bool cut = size > kShownBytes;
  if (cut) {
    size = kShownBytes;
    while (size > 0 && (static_cast<unsigned char>(begin[size]) & 0xC0) == 0x80) --size;
  }
  std::string text;
  for (std::size_t i = 0; i < size; ++i) {
    if (begin[i] == '\n') {
      text += "\\n";
    } else if (begin[i] == '\r') {
      text += "\\r";
    } else {
      text.push_back(begin[i]);
    }
  }
  return cut ? text + "..." : text;
}

std::int64_t FaultReport::line_of(const char* at) const {
  const std::string_view before(text_.data(), static_cast<std::size_t>(at - text_.data()));
  return lines_before_ + 1 + static_cast<std::int64_t>(count_byte(before, '\n'));
}

std::string FaultReport::line_prefix(const char* record) const {
  return file_ + ":" + std::to_string(line_of(record)) + ": ";
}

std::string FaultReport::location(const char* field, std::int64_t column) const {
  const std::string_view before(text_.data(), static_cast<std::size_t>(field - text_.data()));
  const std::size_t newline = before.rfind('\n');
  const std::size_t line_start = newline == std::string_view::npos ? 0 : newline + 1;
  std::string prefix = file_ + ":" + std::to_string(line_of(field)) + ":" +
                       std::to_string(before.size() - line_start + 1) + " (column " +
                       std::to_string(column + 1);
  if (names_ != nullptr && column < static_cast<std::int64_t>(names_->size())) {
    prefix += " '" + (*names_)[static_cast<std::size_t>(column)] + "'";
  }
  return prefix + "): ";
}

std::string FaultReport::missing_target_message(const CsvFault& fault) const {
  return location(fault.field, fault.column) + "missing target value '" +
         shown(fault.text_begin, fault.text_end) +
         "': a missing target cannot be filled in; leave the row out with --missing drop";
}

std::string FaultReport::message(const CsvFault& fault) const {
  switch (fault.problem) {
    case CsvProblem::blank_line:
      return line_prefix(fault.record) + "blank line inside the data";
    case CsvProblem::field_count:
      return line_prefix(fault.record) + "expected " + std::to_string(expected_fields_) +
             " fields, found " + std::to_string(fault.fields);
    case CsvProblem::comment_quote:
      return comment_quote_message(file_, line_of(fault.record));
    case CsvProblem::chunk_mismatch:
      return file_ + ": internal error: a chunk of records did not end at the next one";
    case CsvProblem::empty_field:
      return location(fault.field, fault.column) + "empty field";
    case CsvProblem::not_a_number:
      return location(fault.field, fault.column) + "'" + shown(fault.text_begin, fault.text_end) +
             "' is not a number";
    case CsvProblem::non_finite:
      return location(fault.field, fault.column) + "'" + shown(fault.text_begin, fault.text_end) +
             "' is not finite";
    case CsvProblem::out_of_range:
      return location(fault.field, fault.column) + "'" + shown(fault.text_begin, fault.text_end) +
             "' is too large for a float";
    // Quoting problems point at a quote, not at the field's first byte (blanks may precede
    // it): the opening quote of a quoted field (text_begin is just after it), or the stray
    // quote of an unquoted one (text_end).
    case CsvProblem::unterminated_quote:
      return location(fault.text_begin - 1, fault.column) + "unterminated quote";
    case CsvProblem::text_after_quote:
      return location(fault.text_begin - 1, fault.column) + "characters after the closing quote";
    case CsvProblem::quote_in_field:
      return location(fault.text_end, fault.column) + "quote inside an unquoted field";
    case CsvProblem::missing_value:
      return location(fault.field, fault.column) + "missing value '" +
             shown(fault.text_begin, fault.text_end) +
             "' (CsvOptions::missing is error); fill it in with --missing mean|median|zero or "
             "leave the row out with --missing drop";
  }
  return file_ + ": internal error: unknown CSV problem";
}

namespace {

// A column name as a shell command line needs it: in single quotes when it holds anything but
// letters, digits and -_.=/ (a name with a space would otherwise become two arguments).
std::string shell_word(const std::string& text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' ||
           c == '=' || c == '/';
  });
  if (plain) return text;
  std::string quoted = "'";
  for (const char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

}  // namespace

std::string FaultReport::message(const CsvFault& fault, const CsvLayout& layout) const {
  std::string text = message(fault);
  const auto column = static_cast<std::size_t>(fault.column);
  if (fault.problem == CsvProblem::not_a_number && column < layout.roles.size() &&
      layout.roles[column] == ColumnRole::feature) {
    const std::string name =
        names_ != nullptr && column < names_->size() ? (*names_)[column] : std::to_string(column);
    text += "; if column '" + name + "' holds categories, one-hot encode it with --categorical " +
            shell_word(name);
  }
  return text;
}

// The header (or, without one, the first data record, for its field count).
FirstRecord read_first_record(std::string_view text, const std::string& file, char delimiter,
                              bool header, bool needs_target, std::int64_t lines_before) {
  std::string line = ":";  // appended, not `":" + ...`, which GCC 12 warns on (-Wrestrict)
  line += std::to_string(lines_before + 1);
  line += ':';
  FirstRecord first;
  const char* const end = text.data() + text.size();
  bool blank = false;
  for (const char* p = text.data();;) {
    const CsvField field = scan_csv_field(p, end, delimiter);
    if (!field.ok) {
      // Without a header, columns are named by index here as on later lines.
      std::vector<std::string> names;
      for (std::size_t c = 0; !header && c <= first.fields.size(); ++c) {
        names.push_back(std::to_string(c));
      }
      const CsvFault fault{field.problem,
                           text.data(),
                           p,
                           field.begin,
                           field.end,
                           static_cast<std::int64_t>(first.fields.size()),
                           0};
      throw Error(
          FaultReport(file, text, header ? nullptr : &names, 0, lines_before).message(fault));
    }
    blank = first.fields.empty() && !field.quoted && field.begin == field.end;
    first.fields.push_back(field.escaped ? unescape_quotes(field.begin, field.end)
                                         : std::string(field.begin, field.end));
    if (first.fields.size() > kMaxColumns) throw Error(file + line + " too many columns");
    if (field.terminator < end && *field.terminator == delimiter) {
      p = field.terminator + 1;
      continue;
    }
    first.end = field.terminator < end
                    ? static_cast<std::size_t>(field.terminator + 1 - text.data())
                    : text.size();
    break;
  }
  if (first.fields.size() == 1 && blank) {
    throw Error(file + line +
                (header ? " the header line is blank" : " blank line inside the data"));
  }
  if (first.fields.size() < 2 && needs_target) {
    throw Error(file + line +
                (header ? " the header has 1 column" : " the first line has 1 field") +
                "; at least one feature and one target are needed");
  }
  return first;
}

void check_csv_options(const std::string& file, const CsvOptions& options) {
  const char delimiter = options.delimiter;
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r' || delimiter == '\0') {
    throw Error(file + ": the delimiter cannot be a quote, CR, LF or NUL");
  }
  if (options.chunk_bytes == 0) throw Error(file + ": chunk_bytes must be at least 1");
  if (options.skip_rows < 0) {
    throw Error(file + ": skip_rows is " + std::to_string(options.skip_rows) +
                "; it counts lines to skip and cannot be negative");
  }
  const char comment = options.comment;
  if (comment != '\0' &&
      (comment == delimiter || comment == '"' || comment == '\n' || comment == '\r')) {
    throw Error(file + ": the comment character cannot be the delimiter, a quote, CR or LF");
  }
}

std::string comment_quote_message(const std::string& file, std::int64_t line) {
  return file + ":" + std::to_string(line) +
         ": comment line holds an unbalanced quote (an odd number of '\"'), which would hide "
         "where later records start; remove it or pair it";
}

CsvPreamble skip_csv_preamble(std::string_view text, bool complete, const std::string& file,
                              const CsvOptions& options) {
  CsvPreamble preamble;
  for (std::int64_t skipped = 0; skipped < options.skip_rows; ++skipped) {
    const std::size_t newline = text.find('\n', preamble.end);
    if (newline == std::string_view::npos) {
      if (!complete) {
        preamble.complete = false;
        return preamble;
      }
      // A last line without '\n' counts as a line.
      const std::int64_t lines = preamble.lines + (preamble.end < text.size() ? 1 : 0);
      if (lines < options.skip_rows) {
        throw Error(file + ": skip_rows is " + std::to_string(options.skip_rows) +
                    " but the file has only " + std::to_string(lines) + " lines");
      }
      preamble.end = text.size();
      return preamble;
    }
    preamble.end = newline + 1;
    ++preamble.lines;
  }
  while (options.comment != '\0' && preamble.end < text.size() &&
         text[preamble.end] == options.comment) {
    const std::size_t newline = text.find('\n', preamble.end);
    if (newline == std::string_view::npos && !complete) {
      preamble.complete = false;
      return preamble;
    }
    const std::size_t line_end = newline == std::string_view::npos ? text.size() : newline + 1;
    if ((count_byte(text.substr(preamble.end, line_end - preamble.end), '"') & 1) != 0) {
      throw Error(comment_quote_message(file, preamble.lines + 1));
    }
    preamble.end = line_end;
    if (newline != std::string_view::npos) ++preamble.lines;
  }
  return preamble;
}

CsvRecordsRegion find_csv_records(std::string_view bytes, bool complete, const std::string& file,
                                  const CsvOptions& options) {
  CsvRecordsRegion region;
  region.text = bytes;
  if (region.text.starts_with(kByteOrderMark)) {
    region.offset = kByteOrderMark.size();
    region.text.remove_prefix(region.offset);
  }
  // Trailing blank lines are dropped; what remains ends with '\n' or at the end of the file,
  // where the mapping's zero padding follows.
  const std::size_t end = records_end(region.text, options.delimiter, options.comment);
  if (complete) region.text = region.text.substr(0, end);
  if (end == 0 && complete) {
    throw Error(file +
                (options.header ? ": empty file (a header line is required)" : ": empty file"));
  }
  const CsvPreamble preamble = skip_csv_preamble(region.text, complete, file, options);
  if (complete && preamble.end > 0 && preamble.end >= region.text.size()) {
    throw Error(file + ": nothing but blank lines after the first " +
                std::to_string(preamble.lines) + " lines (skipped rows and comment lines)" +
                (options.header ? "; a header line is required" : ""));
  }
  const FirstRecord first =
      read_first_record(region.text.substr(preamble.end), file, options.delimiter, options.header,
                        !options.no_target, preamble.lines);
  region.names = first.fields;
  if (options.header) {
    region.begin = preamble.end + first.end;
  } else {
    region.begin = preamble.end;
    for (std::size_t c = 0; c < region.names.size(); ++c) region.names[c] = std::to_string(c);
  }
  return region;
}

// Which option list a column name comes from, for messages.
enum class ColumnList { target, ignore, feature, categorical };

// A column by header name or by 0-based index.
static std::size_t resolve_column(const std::string& wanted, const std::vector<std::string>& names,
                                  const std::string& file, ColumnList list) {
  std::size_t found = kNone;
  for (std::size_t c = 0; c < names.size(); ++c) {
    if (names[c] != wanted) continue;
    if (found != kNone) {
      throw Error(file + ": column name '" + wanted + "' is ambiguous (columns " +
                  std::to_string(found + 1) + " and " + std::to_string(c + 1) + ")");
    }
    found = c;
  }
  if (found != kNone) return found;
  long long index = -1;
  const char* first = wanted.data();
  const char* last = first + wanted.size();
  const auto [ptr, ec] = std::from_chars(first, last, index);
  if (ec == std::errc() && ptr == last && !wanted.empty()) {
    if (index < 0 || static_cast<unsigned long long>(index) >= names.size()) {
      const char* what = list == ColumnList::target        ? ": target column index "
                         : list == ColumnList::ignore      ? ": ignored column index "
                         : list == ColumnList::categorical ? ": categorical column index "
                                                           : ": feature column index ";
      throw Error(file + what + wanted + " is out of range (" + std::to_string(names.size()) +
                  " columns)");
    }
    return static_cast<std::size_t>(index);
  }
  if (list == ColumnList::feature) {
    throw Error(file + ": the feature column '" + wanted + "' is missing from the header");
  }
  throw Error(file + ": no column named '" + wanted + "' in the header" +
              (list == ColumnList::target        ? ""
               : list == ColumnList::categorical ? " (categorical list)"
                                                 : " (ignore list)"));
}

std::string column_label(std::size_t column, const std::vector<std::string>& names) {
  return "column " + std::to_string(column + 1) + " '" + names[column] + "'";
}

// A token that is a number would be read as that number before the lookup sees it (numbers
// are parsed first, so that clean files parse at full speed): refused rather than ignored.
static NaTokens na_tokens(const CsvOptions& options, const std::string& file) {
  for (const std::string& token : options.na_values) {
    float value = 0.0f;
    if (token.empty()) continue;
    const NumberStatus status = parse_float(token.data(), token.data() + token.size(), value);
    if (status == NumberStatus::finite || status == NumberStatus::out_of_range) {
      throw Error(file + ": the missing-value token '" + token +
                  "' is a number; na_values holds texts that are not numbers");
    }
  }
  return NaTokens(options.na_values);
}

// Roles and slots of every column, and the dataset's names.
CsvLayout plan_columns(const std::vector<std::string>& names, const CsvOptions& options,
                       const std::string& file, Dataset& data) {
  const std::size_t columns = names.size();
  if (options.no_target && !options.targets.empty()) {
    throw Error(file + ": target columns were given for a read without a target");
  }
  std::vector<std::size_t> targets;
  if (options.targets.empty() && !options.no_target) targets.push_back(columns - 1);
  for (const std::string& wanted : options.targets) {
    const std::size_t column = resolve_column(wanted, names, file, ColumnList::target);
    if (std::find(targets.begin(), targets.end(), column) != targets.end()) {
      throw Error(file + ": " + column_label(column, names) + " is listed twice as a target");
    }
    targets.push_back(column);
  }
  std::vector<char> ignored(columns, 0);
  for (const std::string& wanted : options.ignore) {
    const std::size_t column = resolve_column(wanted, names, file, ColumnList::ignore);
    if (std::find(targets.begin(), targets.end(), column) != targets.end()) {
      throw Error(file + ": " + column_label(column, names) + " is both a target and ignored");
    }
    ignored[column] = 1;
  }
  // An explicit feature list: its columns in its order; every other non-target column is skipped.
  std::vector<std::size_t> listed_features;
  for (const std::string& wanted : options.features) {
    const std::size_t column = resolve_column(wanted, names, file, ColumnList::feature);
    if (std::find(targets.begin(), targets.end(), column) != targets.end()) {
      throw Error(file + ": " + column_label(column, names) + " is both a target and a feature");
    }
    if (ignored[column] != 0) {
      throw Error(file + ": " + column_label(column, names) + " is both a feature and ignored");
    }
    if (std::find(listed_features.begin(), listed_features.end(), column) !=
        listed_features.end()) {
      throw Error(file + ": " + column_label(column, names) + " is listed twice as a feature");
    }
    listed_features.push_back(column);
  }
  std::vector<char> categorical(columns, 0);
  for (const std::string& wanted : options.categorical) {
    const std::size_t column = resolve_column(wanted, names, file, ColumnList::categorical);
    if (std::find(targets.begin(), targets.end(), column) != targets.end()) {
      throw Error(file + ": " + column_label(column, names) + " is both a target and categorical");
    }
    if (ignored[column] != 0) {
      throw Error(file + ": " + column_label(column, names) + " is both categorical and ignored");
    }
    if (!listed_features.empty() && std::find(listed_features.begin(), listed_features.end(),
                                              column) == listed_features.end()) {
      throw Error(file + ": " + column_label(column, names) +
                  " is categorical but not one of the listed features");
    }
    if (categorical[column] != 0) {
      throw Error(file + ": " + column_label(column, names) + " is listed twice as categorical");
    }
    categorical[column] = 1;
  }
  if (!options.categories.empty() && options.categories.size() != options.categorical.size()) {
    throw Error(file + ": " + std::to_string(options.categories.size()) +
                " category vocabularies for " + std::to_string(options.categorical.size()) +
                " categorical columns (one each)");
  }
  const auto ignored_count =
      static_cast<std::size_t>(std::count(ignored.begin(), ignored.end(), 1));
  if (targets.size() + ignored_count >= columns) {
    throw Error(file + ": no feature column left (" + std::to_string(columns) +
                " columns; targets: " + std::to_string(targets.size()) +
                ", ignored: " + std::to_string(ignored_count) + ")");
  }
  if (options.target_kind == TargetKind::classes && !options.no_target && targets.size() != 1) {
    throw Error(file + ": class labels need exactly one target column, " +
                std::to_string(targets.size()) + " were given");
  }
  ColumnRole target_role = ColumnRole::target;
  if (options.target_kind == TargetKind::classes) target_role = ColumnRole::label;
  if (options.target_kind == TargetKind::automatic && targets.size() == 1) {
    target_role = ColumnRole::number_or_label;
  }

  CsvLayout layout;
  layout.delimiter = options.delimiter;
  layout.comment = options.comment;
  layout.allow_non_finite = options.allow_non_finite;
  layout.na_values = na_tokens(options, file);
  layout.missing = options.missing;
  layout.roles.assign(columns, ColumnRole::ignored);
  layout.slots.assign(columns, 0);
  for (std::size_t t = 0; t < targets.size(); ++t) {
    layout.roles[targets[t]] = target_role;
    layout.slots[targets[t]] = static_cast<std::int32_t>(t);
    data.target_names.push_back(names[targets[t]]);
  }
  std::int32_t features = 0;
  auto add_feature = [&](std::size_t c) {
    if (categorical[c] != 0) {
      layout.roles[c] = ColumnRole::category;
      layout.slots[c] = static_cast<std::int32_t>(layout.category_columns.size());
      layout.category_columns.push_back(static_cast<std::int64_t>(c));
      layout.category_positions.push_back(features);
      data.categorical.push_back({names[c], {}, {}});
      return;
    }
    layout.roles[c] = ColumnRole::feature;
    layout.slots[c] = features++;
    data.feature_names.push_back(names[c]);
  };
  for (std::size_t c = 0; c < columns && listed_features.empty(); ++c) {
    if (ignored[c] != 0 || layout.roles[c] != ColumnRole::ignored) continue;
    add_feature(c);
  }
  for (const std::size_t c : listed_features) add_feature(c);
  data.feature_count = features;
  data.target_width = static_cast<int>(targets.size());
  return layout;
}

std::vector<ParsedChunk> parse_rows(const CsvLayout& layout, const CsvText& text,
                                    std::string_view records, std::size_t chunk_bytes,
                                    const FaultReport& report,
                                    const std::function<CsvRowSink(std::int64_t rows)>& allocate) {
  const std::vector<CsvChunk> chunks = split_csv_chunks(records, chunk_bytes, layout.comment);
  const std::int64_t rows = chunks.empty() ? 0 : chunks.back().first_row + chunks.back().rows;
  const CsvRowSink out = allocate(rows);
  const char* const base = records.data();
  std::vector<ParsedChunk> parsed(chunks.size());
  std::atomic<std::size_t> first_failed{kNone};
  tbb::parallel_for(
      tbb::blocked_range<std::size_t>(0, chunks.size(), 1),
      [&](const tbb::blocked_range<std::size_t>& range) {
        for (std::size_t k = range.begin(); k != range.end(); ++k) {
          // Chunks after a failed one cannot hold the first error.
          if (k > first_failed.load(std::memory_order_relaxed)) continue;
          const CsvChunk& chunk = chunks[k];
          const auto first_row = static_cast<std::size_t>(chunk.first_row);
          const CsvRowSink sink{
              out.features + first_row * out.feature_stride,
              out.feature_stride,
              out.targets + first_row * out.target_stride,
              out.target_stride,
              out.labels != nullptr ? out.labels + first_row * out.label_stride : nullptr,
              out.label_stride,
              out.categories != nullptr ? out.categories + first_row * out.category_stride
                                        : nullptr,
              out.category_stride};
          ParsedChunk& result = parsed[k];
          result = parse_csv_records(layout, text, base + chunk.begin, base + chunk.end, chunk.rows,
                                     sink);
          result.first_row = chunk.first_row;
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

  const std::size_t failed = first_failed.load();
  if (failed != kNone) {
    // Chunks before it parsed cleanly and ended where the next began, so this chunk starts at a
    // true record boundary: parsing on from there one record after another meets the first
    // error of the file (a chunk that merely ended in the wrong place was misled by malformed
    // quoting further on).
    const std::size_t features = std::max<std::size_t>(out.feature_stride, 1);
    const std::size_t targets = std::max<std::size_t>(out.target_stride, 1);
    std::vector<float> scratch_features(features), scratch_targets(targets);
    LabelText scratch_label{};
    std::vector<LabelText> scratch_categories(std::max<std::size_t>(out.category_stride, 1));
    const CsvRowSink scratch{scratch_features.data(), 0, scratch_targets.data(),    0,
                             &scratch_label,          0, scratch_categories.data(), 0};
    const ParsedChunk again = parse_csv_records(layout, text, base + chunks[failed].begin, text.end,
                                                std::numeric_limits<std::int64_t>::max(), scratch);
    if (!again.failed) {
      throw Error(report.message({CsvProblem::chunk_mismatch}));
    }
    const CsvFault& fault = again.fault;
    // A missing feature or category keeps the message that suggests filling it in. (Only a
    // missing_value fault's column is always one of the layout's.)
    if (fault.problem == CsvProblem::missing_value &&
        layout.roles[static_cast<std::size_t>(fault.column)] != ColumnRole::feature &&
        layout.roles[static_cast<std::size_t>(fault.column)] != ColumnRole::category) {
      throw Error(report.missing_target_message(fault));
    }
    throw Error(report.message(fault, layout));
  }
  return parsed;
}

}  // namespace shardprop::detail
