// Parsing CSV records into rows of floats: one field scanner for RFC 4180 syntax and the record
// loop that runs over one chunk. Problems come back as values (CsvFault) that point into the
// text; turning them into messages, and deciding which one is reported, is the reader's job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/text_index.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// What a column of the file becomes.
enum class ColumnRole : std::uint8_t {
  feature,          // a number in the feature row (nan/inf only with allow_non_finite)
  target,           // a number in the target row (never nan/inf)
  label,            // a class label: its text is recorded, its index filled in later
  number_or_label,  // a number in the target row when it is one; its text is recorded anyway
  ignored,          // only its quoting is checked
  category,         // a categorical feature: its text is recorded (any text, empty too)
};

// The texts of CsvOptions::na_values. Only fields that are not short numbers reach the lookup,
// and it compares lengths first: a field whose length no token has costs one bit test.
class NaTokens {
 public:
  NaTokens() = default;
  explicit NaTokens(std::vector<std::string> texts);

  bool contains(std::string_view text) const {
    const std::size_t bit = text.size() < 63 ? text.size() : 63;
    if ((lengths_ >> bit & 1) == 0) return false;
    for (const std::string& token : texts_) {
      if (token.size() == text.size() && token == text) return true;
    }
    return false;
  }
  bool empty() const { return texts_.empty(); }

 private:
  std::vector<std::string> texts_;
  std::uint64_t lengths_ = 0;  // bit n: a token of n bytes (bit 63: one of 63 or more)
};

// The one-hot inputs of the category columns when their vocabularies are known before the
// parse: the parse looks each text up and writes 1 at its input of the feature row, while the
// row is in cache, instead of recording the texts for a pass of their own.
struct CategoryInputs {
  std::vector<TextIndex> index;           // per category slot: its texts' category indices
  std::vector<std::int32_t> first_input;  // per category slot: its first input in the row
  std::vector<std::int32_t> categories;   // per category slot: how many
  std::int32_t row_inputs = 0;            // numeric features and one-hot inputs of a row
  // Per category slot: every text of the vocabulary is a field as written, unquoted (not
  // empty, no quote, CR or newline, no blank at either end). A field whose bytes equal one of
  // them is then that category without being scanned; any other field takes the general path.
  std::vector<char> plain_texts;
  // Vocabularies still being fitted: a text not in its vocabulary is a new category (recorded
  // in ParsedChunk::new_categories), not an unseen one, and each category is counted.
  bool collect_new = false;
};

struct CsvLayout {
  char delimiter = ',';
  bool allow_non_finite = false;
  char comment = '\0';  // a record starting with it is a comment line, skipped ('\0': none)
  std::vector<ColumnRole> roles;    // one per column of the file
  std::vector<std::int32_t> slots;  // each column's index in its feature or target row
  // A feature or target field whose (trimmed) text is one of these is missing: with the error
  // policy a missing_value fault; otherwise NaN in the feature row, and for a target NaN with
  // drop (the row is then left out) or a missing_value fault.
  NaTokens na_values;
  MissingPolicy missing = MissingPolicy::error;
  // The category columns in input order: column category_columns[k] has slot k (its text goes
  // to the row's k-th category LabelText), and its one-hot inputs come after the first
  // category_positions[k] numeric features of the row.
  std::vector<std::int64_t> category_columns;
  std::vector<std::int32_t> category_positions;
  // Set: category texts are encoded by the parse (the feature rows hold the one-hot inputs, see
  // encoded_row_layout), and none is recorded. A missing text follows `missing` (error: a
  // missing_value fault; drop: NaN at the column's first input, or the row's first when it has
  // no categories; else nothing), an empty one that is not missing is an empty_field fault, and
  // any other text not in the vocabulary leaves the inputs 0 and counts its row as unseen.
  std::shared_ptr<const CategoryInputs> category_inputs;
};

// Where a label's text is, relative to the start of the text; escaped when it still holds ""
// pairs (a quoted field with escaped quotes). Trivial, so that an array of them for every row
// can be allocated without a zero fill.
struct LabelText {
  std::uint64_t offset;
  std::uint64_t size_and_escaped;  // size << 1 | escaped

  std::uint64_t size() const { return size_and_escaped >> 1; }
  bool escaped() const { return (size_and_escaped & 1) != 0; }
};

enum class CsvProblem : std::uint8_t {
  blank_line,          // a record with nothing in it
  field_count,         // CsvFault::fields fields instead of the header's count
  empty_field,         // nothing (or only blanks) in a field that must hold a value
  not_a_number,        // a feature or numeric target field that is not a number
  non_finite,          // nan or inf where it is not allowed
  out_of_range,        // a number too large for a float
  unterminated_quote,  // a quoted field runs to the end of the text
  text_after_quote,    // something other than blanks, a delimiter or a line end after the quote
  quote_in_field,      // a '"' inside an unquoted field
  chunk_mismatch,      // a chunk did not end where the next one begins (malformed quoting)
  comment_quote,       // a comment line with an odd number of quotes (record: its start)
  missing_value,       // a field in CsvOptions::na_values where the policy needs a value
};

struct CsvFault {
  CsvProblem problem = CsvProblem::blank_line;
  const char* record = nullptr;      // the record's first byte
  const char* field = nullptr;       // the field's first byte (before any blanks)
  const char* text_begin = nullptr;  // the field's text, for the message
  const char* text_end = nullptr;
  std::int64_t column = 0;  // 0-based index of the field in its record
  std::int64_t fields = 0;  // field_count: the fields found
};

// Where row r's values go: features + r·feature_stride, targets + r·target_stride,
// labels + r·label_stride (labels only for a label or number_or_label column), categories +
// r·category_stride (the texts of the category columns, by slot). A stride of 0 makes every row
// overwrite one scratch row.
struct CsvRowSink {
  float* features = nullptr;
  std::size_t feature_stride = 0;
  float* targets = nullptr;
  std::size_t target_stride = 0;
  LabelText* labels = nullptr;
  std::size_t label_stride = 0;
  LabelText* categories = nullptr;
  std::size_t category_stride = 0;
};

struct CsvText {
  const char* begin = nullptr;  // offsets of LabelText count from here
  // The end of the records. REQUIRES: 64 readable bytes follow, and the byte at end is not the
  // delimiter (the reader's text ends at EOF, before zero padding, or before trimmed blanks).
  const char* end = nullptr;
};

// A category text that was not in its vocabulary (CategoryInputs::collect_new).
struct NewCategoryCell {
  std::int64_t row = 0;  // in its chunk
  std::int32_t slot = 0;
  LabelText text{};
};

struct ParsedChunk {
  std::int64_t first_row = 0;  // of the chunk, in the whole parse (set by parse_rows)
  std::int64_t rows = 0;
  const char* end = nullptr;  // where the next record would start
  bool failed = false;
  CsvFault fault;
  // number_or_label column: false once a label is not a number; the first nan, inf or
  // out-of-range number is kept, as it is an error only if the column turns out numeric.
  bool labels_are_numbers = true;
  bool has_non_finite_label = false;
  CsvFault non_finite_label;
  std::int64_t unseen_category_rows = 0;  // with CsvLayout::category_inputs
  // With CategoryInputs::collect_new: the texts not in their vocabularies, and the rows holding
  // each category (indexed by its input's place in the row).
  std::vector<NewCategoryCell> new_categories;
  std::vector<std::int64_t> category_counts;
};

// Parses records from `begin` (a record start) while fewer than max_rows are done and the next
// one starts before `stop`, writing row r of the chunk through `rows`. Comment lines at record
// starts before `stop` are skipped (also after the last row), and count no row. Stops at the first
// problem of a record, choosing, within that record, a quoting problem first, then a wrong
// field count, then the first bad value.
ParsedChunk parse_csv_records(const CsvLayout& layout, const CsvText& text, const char* begin,
                              const char* stop, std::int64_t max_rows, const CsvRowSink& rows);

// One field as RFC 4180 reads it, starting at `field` (after a delimiter or at a record start).
struct CsvField {
  const char* begin = nullptr;  // the text: trimmed when unquoted, between the quotes if quoted
  const char* end = nullptr;
  const char* terminator = nullptr;  // the delimiter or '\n' after the field, or the text's end
  bool quoted = false;
  bool escaped = false;  // the quoted text holds "" pairs
  bool ok = true;        // else problem is a quoting problem
  CsvProblem problem = CsvProblem::unterminated_quote;
};

// Blanks (spaces and tabs, except the delimiter) around a field are not part of it; so is the
// '\r' of a CRLF line end.
CsvField scan_csv_field(const char* field, const char* end, char delimiter);

// The text of a quoted field with each "" turned into ".
std::string unescape_quotes(const char* begin, const char* end);

}  // namespace shardprop::detail
