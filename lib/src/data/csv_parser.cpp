// The record loop: field ends come from a bitmap of delimiters and newlines, 64 bytes at a time,
// so finding a field never waits for the previous number; short numbers are parsed in place,
// anything else (blanks, quotes, CR, long numbers, labels) by the general field scanner.
#include "data/csv_parser.hpp"

#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#include "data/csv_number.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace shardprop::detail {
namespace {

struct Blanks {
  char a = ' ';
  char b = '\t';
  bool contains(char c) const { return c == a || c == b; }
};

// A blank that is the delimiter separates fields instead.
Blanks blanks_for(char delimiter) {
  Blanks blanks;
  if (delimiter == ' ') blanks.a = '\t';
  if (delimiter == '\t') blanks.b = ' ';
  return blanks;
}

// A quoted number may have blanks inside the quotes too.
struct NumberText {
  const char* begin;
  const char* end;
};
NumberText number_text(const CsvField& scanned, char delimiter) {
  const Blanks blanks = blanks_for(delimiter);
  NumberText text{scanned.begin, scanned.end};
  while (text.begin < text.end && blanks.contains(*text.begin)) ++text.begin;
  while (text.end > text.begin && blanks.contains(text.end[-1])) --text.end;
  return text;
}

// Yields, in order, the positions of the delimiters and newlines at or after a start, quotes
// ignored; end when there are no more before end. Reads up to 63 bytes past end, and may
// yield a separator there if asked for one after the last '\n' before end (the parser never
// does: a record ends at the first '\n' after its last delimiter).
class SeparatorCursor {
 public:
  SeparatorCursor(const char* start, const char* end, char delimiter)
      : end_(end), delimiter_(delimiter) {
    restart(start);
  }

  void restart(const char* start) {
    base_ = start;
    mask_ = block_mask(start);
  }

  const char* next() {
    while (mask_ == 0) {
      if (base_ + 64 >= end_) return end_;
      base_ += 64;
      mask_ = block_mask(base_);
    }
    const char* separator = base_ + __builtin_ctzll(mask_);
    mask_ &= mask_ - 1;
    return separator;
  }

 private:
  // Bit i set when block[i] is the delimiter or '\n'.
  std::uint64_t block_mask(const char* block) const {
#if defined(__SSE2__)
    const __m128i delimiter = _mm_set1_epi8(delimiter_);
    const __m128i newline = _mm_set1_epi8('\n');
    std::uint64_t mask = 0;
    for (int i = 0; i < 4; ++i) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16 * i));
      const __m128i hits =
          _mm_or_si128(_mm_cmpeq_epi8(bytes, delimiter), _mm_cmpeq_epi8(bytes, newline));
      mask |= static_cast<std::uint64_t>(static_cast<std::uint32_t>(_mm_movemask_epi8(hits)))
              << (16 * i);
    }
    return mask;
#else
    std::uint64_t mask = 0;
    for (int i = 0; i < 64; ++i) {
      const bool hit = block[i] == delimiter_ || block[i] == '\n';
      mask |= static_cast<std::uint64_t>(hit) << i;
    }
    return mask;
#endif
  }

  const char* base_ = nullptr;
  std::uint64_t mask_ = 0;
  const char* end_;
  char delimiter_;
};

// Whether a quote is among the n bytes at p; short fields without a call.
bool has_quote(const char* p, std::size_t n) {
  if (n > 16) return std::memchr(p, '"', n) != nullptr;
  bool quote = false;
  for (std::size_t i = 0; i < n; ++i) quote |= p[i] == '"';
  return quote;
}

// Consecutive columns of one numeric role whose slots are consecutive too, or one column of
// another role.
struct ColumnRun {
  std::int64_t first_column = 0;
  std::int64_t columns = 0;
  ColumnRole role = ColumnRole::feature;
  std::int32_t first_slot = 0;
};

std::vector<ColumnRun> column_runs(const CsvLayout& layout) {
  std::vector<ColumnRun> runs;
  for (std::size_t c = 0; c < layout.roles.size(); ++c) {
    const ColumnRole role = layout.roles[c];
    const bool numeric = role == ColumnRole::feature || role == ColumnRole::target;
    if (numeric && !runs.empty() && runs.back().role == role &&
        runs.back().first_slot + runs.back().columns == layout.slots[c]) {
      ++runs.back().columns;
      continue;
    }
    runs.push_back({static_cast<std::int64_t>(c), 1, role, layout.slots[c]});
  }
  return runs;
}

class RecordParser {
 public:
  RecordParser(const CsvLayout& layout, const CsvText& text, const CsvRowSink& sink)
      : layout_(layout),
        text_(text),
        sink_(sink),
        columns_(static_cast<std::int64_t>(layout.roles.size())),
        runs_(column_runs(layout)) {
    if (layout.category_inputs != nullptr && layout.category_inputs->collect_new) {
      result_.category_counts.assign(static_cast<std::size_t>(layout.category_inputs->row_inputs),
                                     0);
    }
  }

  ParsedChunk run(const char* begin, const char* stop, std::int64_t max_rows);

 private:
  // The first record start at or after p (a record start) that is not a comment line, or stop;
  // nullptr after recording a comment line's unbalanced quote.
  const char* skip_comments(const char* p, const char* stop);
  // The general path for a number: writes *destination, returns the field's terminator (or
  // nullptr after recording a fault).
  const char* number_field(const char* record, const char* field, std::int64_t column,
                           ColumnRole role, float* destination);
  const char* other_field(const char* record, const char* field, const char* separator,
                          std::int64_t column, float* features, float* targets, LabelText* label,
                          LabelText* categories);
  // Most category fields while encoding: the field's bytes, unscanned, are a text of its
  // column's vocabulary (CategoryInputs::plain_texts), whose input is set to 1. False, with
  // nothing written, leaves the field to other_field.
  bool known_plain_category(const char* field, const char* separator, std::int32_t slot,
                            float* features) {
    const CategoryInputs* inputs = layout_.category_inputs.get();
    if (inputs == nullptr) return false;
    const auto k = static_cast<std::size_t>(slot);
    if (inputs->plain_texts[k] == 0) return false;
    const std::int32_t category =
        inputs->index[k].find({field, static_cast<std::size_t>(separator - field)});
    if (category == TextIndex::kAbsent) return false;
    set_category_input(*inputs, k, category, features);
    return true;
  }
  // Category `category` of slot k found: its input of the feature row set to 1 (and counted
  // while the vocabularies are being fitted).
  void set_category_input(const CategoryInputs& inputs, std::size_t k, std::int32_t category,
                          float* features) {
    const std::int32_t input = inputs.first_input[k] + category;
    features[input] = 1.0f;
    if (inputs.collect_new) ++result_.category_counts[static_cast<std::size_t>(input)];
  }
  // A category text with CsvLayout::category_inputs: its input of the feature row set to 1.
  const char* category_field(const char* record, const char* field, std::int64_t column,
                             std::int32_t slot, const CsvField& scanned, float* features);
  // Whether the field's text is one of layout.na_values.
  bool is_missing(const CsvField& scanned, const NumberText& text) const;
  // A missing cell: writes NaN and returns true when the policy keeps the row for now, else
  // records a missing_value fault and returns false.
  bool missing(const char* record, const char* field, std::int64_t column, ColumnRole role,
               const NumberText& text, float* destination);
  // Records the fault of a record whose field `column` has a bad value (or whose field count
  // is wrong, problem == field_count): a quoting problem anywhere in the record comes first,
  // then a blank record or a wrong field count, then the bad value. Returns nullptr.
  const char* fail(const char* record, const char* field, std::int64_t column, CsvProblem problem,
                   const char* text_begin, const char* text_end);
  // Records a quoting problem of a field (the first of its record). Returns nullptr.
  const char* fail_quoting(const char* record, const char* field, std::int64_t column,
                           const CsvField& scanned);
  ParsedChunk stopped(std::int64_t rows, const char* record) {
    result_.rows = rows;
    result_.end = record;
    return result_;
  }

  const CsvLayout& layout_;
  const CsvText& text_;
  const CsvRowSink& sink_;
  const std::int64_t columns_;
  const std::vector<ColumnRun> runs_;
  ParsedChunk result_;
  bool row_unseen_ = false;  // the record holds a category not in its vocabulary
  std::int64_t row_ = 0;     // the record's row in the chunk
  std::string scratch_;      // an escaped category text, unescaped
};

// Each field ends at a separator from the cursor; the byte there decides whether the record
// goes on (the delimiter) or ends ('\n', or the end of the text, whose byte is never the
// delimiter). The general paths may move the end past separators inside quotes.
ParsedChunk RecordParser::run(const char* begin, const char* stop, std::int64_t max_rows) {
  const char delimiter = layout_.delimiter;
  const char* const end = text_.end;
  const std::int64_t last_column = columns_ - 1;
  const bool comments = layout_.comment != '\0';
  const char* p = begin;
  if (comments) {
    p = skip_comments(p, stop);
    if (p == nullptr) return stopped(0, begin);
  }
  SeparatorCursor separators(p, end, delimiter);
  std::int64_t row = 0;
  for (; row < max_rows && p < stop; ++row) {
    const char* const record = p;
    row_ = row;
    float* const features = sink_.features + row * static_cast<std::int64_t>(sink_.feature_stride);
    float* const targets = sink_.targets + row * static_cast<std::int64_t>(sink_.target_stride);
    LabelText* const label =
        sink_.labels == nullptr
            ? nullptr
            : sink_.labels + row * static_cast<std::int64_t>(sink_.label_stride);
    LabelText* const categories =
        sink_.categories == nullptr
            ? nullptr
            : sink_.categories + row * static_cast<std::int64_t>(sink_.category_stride);
    const char* terminator = p;
    for (const ColumnRun& run : runs_) {
      if (run.role == ColumnRole::feature || run.role == ColumnRole::target) [[likely]] {
        float* const destination =
            (run.role == ColumnRole::feature ? features : targets) + run.first_slot;
        for (std::int64_t i = 0; i < run.columns; ++i) {
          const char* const separator = separators.next();
          terminator = separator;
          float value;
          if (parse_short_float(p, separator, value)) [[likely]] {
            destination[i] = value;
          } else {
            terminator = number_field(record, p, run.first_column + i, run.role, destination + i);
            if (terminator == nullptr) return stopped(row, record);
            if (terminator != separator && terminator < end) separators.restart(terminator + 1);
          }
          // The record ends here: fine only at its last column.
          if (*terminator != delimiter && run.first_column + i != last_column) [[unlikely]] {
            fail(record, p, run.first_column + i, CsvProblem::field_count, nullptr, nullptr);
            return stopped(row, record);
          }
          p = terminator + 1;
        }
      } else {
        const char* const separator = separators.next();
        if (run.role == ColumnRole::category &&
            known_plain_category(p, separator, run.first_slot, features)) {
          terminator = separator;
        } else {
          terminator = other_field(record, p, separator, run.first_column, features, targets, label,
                                   categories);
          if (terminator == nullptr) return stopped(row, record);
          if (terminator != separator && terminator < end) separators.restart(terminator + 1);
        }
        if (*terminator != delimiter && run.first_column != last_column) {
          fail(record, p, run.first_column, CsvProblem::field_count, nullptr, nullptr);
          return stopped(row, record);
        }
        p = terminator + 1;
      }
    }
    if (*terminator == delimiter) [[unlikely]] {  // more fields than columns
      fail(record, record, last_column, CsvProblem::field_count, nullptr, nullptr);
      return stopped(row, record);
    }
    if (row_unseen_) [[unlikely]] {
      ++result_.unseen_category_rows;
      row_unseen_ = false;
    }
    if (p > end) p = end;  // the last record ended at the end of the text, without '\n'
    if (comments && p < stop && *p == layout_.comment) [[unlikely]] {
      const char* const record_end = p;
      p = skip_comments(p, stop);
      if (p == nullptr) return stopped(row + 1, record_end);
      separators.restart(p);
    }
  }
  result_.rows = row;
  result_.end = p;
  return result_;
}

const char* RecordParser::skip_comments(const char* p, const char* stop) {
  while (p < stop && *p == layout_.comment) {
    const void* found = std::memchr(p, '\n', static_cast<std::size_t>(text_.end - p));
    const char* const line_end = found == nullptr ? text_.end : static_cast<const char*>(found);
    std::int64_t quotes = 0;
    for (const char* q = p; q < line_end; ++q) quotes += *q == '"';
    if ((quotes & 1) != 0) {
      result_.failed = true;
      result_.fault = {CsvProblem::comment_quote, p, p, nullptr, nullptr, 0, 0};
      return nullptr;
    }
    p = found == nullptr ? text_.end : line_end + 1;
  }
  return p;
}

const char* RecordParser::number_field(const char* record, const char* field, std::int64_t column,
                                       ColumnRole role, float* destination) {
  const CsvField scanned = scan_csv_field(field, text_.end, layout_.delimiter);
  if (!scanned.ok) return fail_quoting(record, field, column, scanned);
  const NumberText text = number_text(scanned, layout_.delimiter);
  float value = 0.0f;
  const NumberStatus status = scanned.escaped || text.begin == text.end
                                  ? NumberStatus::not_a_number
                                  : parse_float(text.begin, text.end, value);
  if (status == NumberStatus::finite || (status == NumberStatus::non_finite &&
                                         role == ColumnRole::feature && layout_.allow_non_finite)) {
    *destination = value;
    return scanned.terminator;
  }
  if (is_missing(scanned, text)) {
    return missing(record, field, column, role, text, destination) ? scanned.terminator : nullptr;
  }
  if (text.begin == text.end) {
    return fail(record, field, column, CsvProblem::empty_field, scanned.begin, scanned.end);
  }
  CsvProblem problem = CsvProblem::not_a_number;
  if (status == NumberStatus::non_finite) problem = CsvProblem::non_finite;
  if (status == NumberStatus::out_of_range) problem = CsvProblem::out_of_range;
  return fail(record, field, column, problem, scanned.begin, scanned.end);
}

bool RecordParser::is_missing(const CsvField& scanned, const NumberText& text) const {
  if (layout_.na_values.empty()) return false;
  if (!scanned.escaped) {
    return layout_.na_values.contains(
        std::string_view(text.begin, static_cast<std::size_t>(text.end - text.begin)));
  }
  return layout_.na_values.contains(unescape_quotes(text.begin, text.end));
}

bool RecordParser::missing(const char* record, const char* field, std::int64_t column,
                           ColumnRole role, const NumberText& text, float* destination) {
  // A missing feature can be filled in later or its row dropped; a missing target only dropped.
  const bool keep = role == ColumnRole::feature ? layout_.missing != MissingPolicy::error
                                                : layout_.missing == MissingPolicy::drop;
  if (!keep) {
    fail(record, field, column, CsvProblem::missing_value, text.begin, text.end);
    return false;
  }
  *destination = std::numeric_limits<float>::quiet_NaN();
  return true;
}

const char* RecordParser::category_field(const char* record, const char* field, std::int64_t column,
                                         std::int32_t slot, const CsvField& scanned,
                                         float* features) {
  const CategoryInputs& inputs = *layout_.category_inputs;
  const auto k = static_cast<std::size_t>(slot);
  std::string_view text(scanned.begin, static_cast<std::size_t>(scanned.end - scanned.begin));
  if (scanned.escaped) {
    scratch_ = unescape_quotes(scanned.begin, scanned.end);
    text = scratch_;
  }
  const std::int32_t category = inputs.index[k].find(text);
  if (category != TextIndex::kAbsent) [[likely]] {
    set_category_input(inputs, k, category, features);
    return scanned.terminator;
  }
  const bool is_missing = layout_.na_values.contains(text);
  if (!is_missing && !text.empty()) {
    if (inputs.collect_new) {
      result_.new_categories.push_back(
          {row_,
           slot,
           {static_cast<std::uint64_t>(scanned.begin - text_.begin),
            static_cast<std::uint64_t>(scanned.end - scanned.begin) << 1 |
                static_cast<std::uint64_t>(scanned.escaped)}});
    } else {
      row_unseen_ = true;
    }
    return scanned.terminator;
  }
  if (is_missing && layout_.missing == MissingPolicy::drop) {
    if (inputs.row_inputs > 0) {
      features[inputs.categories[k] > 0 ? inputs.first_input[k] : 0] =
          std::numeric_limits<float>::quiet_NaN();
    }
    return scanned.terminator;
  }
  if (is_missing && layout_.missing != MissingPolicy::error) return scanned.terminator;
  return fail(record, field, column,
              is_missing ? CsvProblem::missing_value : CsvProblem::empty_field, scanned.begin,
              scanned.end);
}

const char* RecordParser::other_field(const char* record, const char* field, const char* separator,
                                      std::int64_t column, float* features, float* targets,
                                      LabelText* label, LabelText* categories) {
  const ColumnRole role = layout_.roles[column];
  const std::int32_t slot = layout_.slots[column];
  if (role == ColumnRole::number_or_label) {
    float value;
    if (parse_short_float(field, separator, value)) {
      targets[slot] = value;
      label->offset = static_cast<std::uint64_t>(field - text_.begin);
      label->size_and_escaped = static_cast<std::uint64_t>(separator - field) << 1;
      return separator;
    }
  }
  if (role == ColumnRole::category && layout_.category_inputs != nullptr) {
    // An unquoted field without blanks around it, as most are: its text ends at the separator.
    const auto size = static_cast<std::size_t>(separator - field);
    const Blanks blanks = blanks_for(layout_.delimiter);
    if (size > 0 && !has_quote(field, size) && !blanks.contains(field[0]) &&
        !blanks.contains(separator[-1]) && separator[-1] != '\r') {
      CsvField plain;
      plain.begin = field;
      plain.end = separator;
      plain.terminator = separator;
      return category_field(record, field, column, slot, plain, features);
    }
  }
  const CsvField scanned = scan_csv_field(field, text_.end, layout_.delimiter);
  if (!scanned.ok) return fail_quoting(record, field, column, scanned);
  if (role == ColumnRole::ignored) return scanned.terminator;
  if (role == ColumnRole::category) {
    if (layout_.category_inputs != nullptr) {
      return category_field(record, field, column, slot, scanned, features);
    }
    // Empty or missing texts are the encoder's to judge (CsvOptions::na_values).
    categories[slot] = {static_cast<std::uint64_t>(scanned.begin - text_.begin),
                        static_cast<std::uint64_t>(scanned.end - scanned.begin) << 1 |
                            static_cast<std::uint64_t>(scanned.escaped)};
    return scanned.terminator;
  }
  if (!layout_.na_values.empty()) {
    const NumberText text = number_text(scanned, layout_.delimiter);
    if (is_missing(scanned, text)) {
      if (!missing(record, field, column, role, text, targets + slot)) return nullptr;
      // Dropped with its row before the labels are looked at.
      label->offset = static_cast<std::uint64_t>(scanned.begin - text_.begin);
      label->size_and_escaped = 0;
      return scanned.terminator;
    }
  }
  if (scanned.begin == scanned.end) {
    return fail(record, field, column, CsvProblem::empty_field, scanned.begin, scanned.end);
  }
  float value = 0.0f;
  if (role == ColumnRole::number_or_label) {
    const NumberText text = number_text(scanned, layout_.delimiter);
    const NumberStatus status = scanned.escaped || text.begin == text.end
                                    ? NumberStatus::not_a_number
                                    : parse_float(text.begin, text.end, value);
    if (status == NumberStatus::not_a_number) {
      result_.labels_are_numbers = false;
      value = 0.0f;
    } else if (status != NumberStatus::finite) {
      if (!result_.has_non_finite_label) {
        result_.has_non_finite_label = true;
        result_.non_finite_label = {
            status == NumberStatus::non_finite ? CsvProblem::non_finite : CsvProblem::out_of_range,
            record,
            field,
            scanned.begin,
            scanned.end,
            column,
            0};
      }
      value = 0.0f;
    }
  }
  targets[slot] = value;
  label->offset = static_cast<std::uint64_t>(scanned.begin - text_.begin);
  label->size_and_escaped = static_cast<std::uint64_t>(scanned.end - scanned.begin) << 1 |
                            static_cast<std::uint64_t>(scanned.escaped);
  return scanned.terminator;
}

const char* RecordParser::fail_quoting(const char* record, const char* field, std::int64_t column,
                                       const CsvField& scanned) {
  result_.failed = true;
  result_.fault = {scanned.problem, record, field, scanned.begin, scanned.end, column, 0};
  return nullptr;
}

const char* RecordParser::fail(const char* record, const char* field, std::int64_t column,
                               CsvProblem problem, const char* text_begin, const char* text_end) {
  // Split the whole record again to count its fields.
  const char* const end = text_.end;
  const char delimiter = layout_.delimiter;
  std::int64_t fields = 0;
  bool blank = false;
  for (const char* p = record;;) {
    const CsvField scanned = scan_csv_field(p, end, delimiter);
    if (!scanned.ok) return fail_quoting(record, p, fields, scanned);
    blank = fields == 0 && !scanned.quoted && scanned.begin == scanned.end;
    ++fields;
    if (scanned.terminator >= end || *scanned.terminator != delimiter) break;
    p = scanned.terminator + 1;
  }
  result_.failed = true;
  if (fields == 1 && blank) {
    result_.fault = {CsvProblem::blank_line, record, record, nullptr, nullptr, 0, 1};
  } else if (fields != columns_) {
    result_.fault = {CsvProblem::field_count, record, record, nullptr, nullptr, 0, fields};
  } else {
    result_.fault = {problem, record, field, text_begin, text_end, column, fields};
  }
  return nullptr;
}

}  // namespace

NaTokens::NaTokens(std::vector<std::string> texts) : texts_(std::move(texts)) {
  for (const std::string& token : texts_) {
    lengths_ |= std::uint64_t{1} << (token.size() < 63 ? token.size() : 63);
  }
}

ParsedChunk parse_csv_records(const CsvLayout& layout, const CsvText& text, const char* begin,
                              const char* stop, std::int64_t max_rows, const CsvRowSink& rows) {
  RecordParser parser(layout, text, rows);
  return parser.run(begin, stop, max_rows);
}

CsvField scan_csv_field(const char* field, const char* end, char delimiter) {
  const Blanks blanks = blanks_for(delimiter);
  CsvField scanned;
  const char* p = field;
  while (p < end && blanks.contains(*p)) ++p;
  if (p < end && *p == '"') {
    scanned.quoted = true;
    scanned.begin = p + 1;
    for (const char* from = p + 1;;) {
      const void* found = std::memchr(from, '"', static_cast<std::size_t>(end - from));
      if (found == nullptr) {
        scanned.ok = false;
        scanned.problem = CsvProblem::unterminated_quote;
        scanned.end = end;
        scanned.terminator = end;
        return scanned;
      }
      const char* quote = static_cast<const char*>(found);
      if (quote + 1 < end && quote[1] == '"') {
        scanned.escaped = true;
        from = quote + 2;
        continue;
      }
      scanned.end = quote;
      p = quote + 1;
      break;
    }
    while (p < end && blanks.contains(*p)) ++p;
    if (p < end && *p == '\r' && (p + 1 == end || p[1] == '\n')) ++p;
    scanned.terminator = p;
    if (p < end && *p != delimiter && *p != '\n') {
      scanned.ok = false;
      scanned.problem = CsvProblem::text_after_quote;
    }
    return scanned;
  }
  scanned.begin = p;
  while (p < end && *p != delimiter && *p != '\n') {
    if (*p == '"') {
      scanned.ok = false;
      scanned.problem = CsvProblem::quote_in_field;
      scanned.end = p;
      scanned.terminator = p;
      return scanned;
    }
    ++p;
  }
  scanned.terminator = p;
  const char* text_end = p;
  if ((p == end || *p == '\n') && text_end > scanned.begin && text_end[-1] == '\r') --text_end;
  while (text_end > scanned.begin && blanks.contains(text_end[-1])) --text_end;
  scanned.end = text_end;
  return scanned;
}

std::string unescape_quotes(const char* begin, const char* end) {
  std::string text;
  text.reserve(static_cast<std::size_t>(end - begin));
  for (const char* p = begin; p < end; ++p) {
    text.push_back(*p);
    if (*p == '"' && p + 1 < end && p[1] == '"') ++p;
  }
  return text;
}

}  // namespace shardprop::detail
