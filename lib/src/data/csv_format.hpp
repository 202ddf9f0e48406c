// The parts of reading a CSV file that a whole-file read and a stream share: the header and
// the plan of what each column becomes, the end of the records, and turning a parse fault into
// a FILE:LINE:COLUMN message. Leaves out the parsing itself (csv_parser) and the chunking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/csv_parser.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::detail {

inline constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

// The end of the records: trailing lines of blanks (and CR) are not records, nor are comment
// lines among them (starting with `comment`, when not '\0', and holding an even number of
// quotes: the last line of a quoted field holds an odd number). Returns the offset just past the
// '\n' of the last line that is a record's, or the text's size.
std::size_t records_end(std::string_view text, char delimiter, char comment);

// Turns faults into messages: FILE:LINE:COLUMN (column N 'name'): what, or FILE:LINE: what.
// Lines count from 1 + first_line at the start of `text`; columns are 1-based bytes within the
// line (after a byte order mark on line 1). `text` must start at a line start.
class FaultReport {
 public:
  FaultReport(std::string file, std::string_view text, const std::vector<std::string>* names,
              std::int64_t expected_fields, std::int64_t lines_before = 0)
      : file_(std::move(file)),
        text_(text),
        names_(names),
        expected_fields_(expected_fields),
        lines_before_(lines_before) {}

  std::string message(const CsvFault& fault) const;
  // A missing_value fault in a target column, which no policy but drop can get past.
  std::string missing_target_message(const CsvFault& fault) const;
  std::string location(const char* field, std::int64_t column) const;  // FILE:LINE:COL (…):
  // The message, with a hint for a feature column's text: it may be a categorical column.
  std::string message(const CsvFault& fault, const CsvLayout& layout) const;

 private:
  std::int64_t line_of(const char* at) const;
  std::string line_prefix(const char* record) const;

  std::string file_;
  std::string_view text_;
  const std::vector<std::string>* names_;
  std::int64_t expected_fields_;
  std::int64_t lines_before_;
};

struct FirstRecord {
  std::vector<std::string> fields;
  std::size_t end = 0;  // offset of the next record
};

// The header (or, without one, the first data record, for its field count). At least two
// columns (a feature and a target) unless needs_target is false. `text` starts at the record's
// line, the file's line lines_before + 1.
FirstRecord read_first_record(std::string_view text, const std::string& file, char delimiter,
                              bool header, bool needs_target = true, std::int64_t lines_before = 0);

// Throws Error "FILE: ..." for a delimiter that is a quote, CR, LF or NUL, chunk_bytes 0, a
// negative skip_rows, or a comment character that is the delimiter, a quote, CR or LF.
void check_csv_options(const std::string& file, const CsvOptions& options);

// What comes before the header (or the first record): options.skip_rows lines, whatever they
// hold, then comment lines.
struct CsvPreamble {
  std::size_t end = 0;     // offset in text of the line after it
  std::int64_t lines = 0;  // the '\n' before `end`
  bool complete = true;    // false: `text` ends inside it and was not the whole file
};

// The preamble at the start of `text` (after any byte order mark). Throws Error when the file
// (`complete`) has fewer than skip_rows lines, or a comment line holds an odd number of quotes.
CsvPreamble skip_csv_preamble(std::string_view text, bool complete, const std::string& file,
                              const CsvOptions& options);

// The message for a comment line with an odd number of quotes, at `line` (1-based).
std::string comment_quote_message(const std::string& file, std::int64_t line);

// Where the records of a file are, and its column names.
struct CsvRecordsRegion {
  std::size_t offset = 0;  // of `text` in the file: the byte order mark's size, or 0
  // The file after any byte order mark, up to records_end when the file was given complete.
  std::string_view text;
  std::size_t begin = 0;           // offset in text of the first record (after the header line)
  std::vector<std::string> names;  // the header's fields, or "0", "1", ... without a header
};

// `bytes` is the start of a file: all of it when `complete`, else enough to hold the first
// record whole. Throws Error for an empty file and for a bad header (read_first_record).
CsvRecordsRegion find_csv_records(std::string_view bytes, bool complete, const std::string& file,
                                  const CsvOptions& options);

std::string column_label(std::size_t column, const std::vector<std::string>& names);

// Roles and slots of every column; fills the dataset's names, feature count and target width.
// With categorical columns (CsvOptions::categorical) the feature count and names are the
// numeric features' only, as the parser writes them, and data.categorical names the columns
// (without categories): encode_categories (csv_categorical.hpp) makes the final features.
CsvLayout plan_columns(const std::vector<std::string>& names, const CsvOptions& options,
                       const std::string& file, Dataset& data);

// Parses the complete records in `records` (a part of text.begin..text.end starting at a record
// start) in parallel chunks of about chunk_bytes, in the caller's task_arena. `allocate` gets
// the row count once and returns where rows go (strides per row). Throws Error with the first
// fault in file order, whatever the chunking.
std::vector<ParsedChunk> parse_rows(const CsvLayout& layout, const CsvText& text,
                                    std::string_view records, std::size_t chunk_bytes,
                                    const FaultReport& report,
                                    const std::function<CsvRowSink(std::int64_t rows)>& allocate);

}  // namespace shardprop::detail
