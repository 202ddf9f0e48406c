// One CSV file read in P parts, each part reading only its own byte range, so that P processes
// can share a file without one of them reading it all. Leaves out talking between processes:
// the caller sums the scans of the parts before its own (an exclusive prefix sum).
//
// The records region of a file is what read_csv parses: after a byte order mark and the header
// line, up to records_end. With b its first byte and n its size, part p of P has the nominal
// range [b + n·p/P, b + n·(p+1)/P) and owns the records that start in it (a record starts at b
// and after every '\n' outside quotes; quote state by the parity rule of csv_chunks.hpp). So the
// parts partition the records whatever P is; a part's last record may run past its range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// The '"' and '\n' bytes in one part's nominal range.
struct CsvPartScan {
  std::uint64_t quotes = 0;
  std::uint64_t newlines = 0;
};

// Counts part `part` of `parts` (0 <= part < parts), reading only the header and that range.
// Throws Error for bad options or a bad part number, an empty file or a bad header, with
// read_csv's messages.
CsvPartScan scan_csv_part(const std::filesystem::path& path, const CsvOptions& options, int part,
                          int parts);

// scan_csv_part's checks without its count, for the last part: its count is in no part's
// `before`, so counting its bytes (the whole file in one process) would be a pass for nothing.
void check_csv_part(const std::filesystem::path& path, const CsvOptions& options, int part,
                    int parts);

struct CsvPart {
  // The part's rows in file order; names, feature count and target width as read_csv gives them
  // (also with no rows). Class labels: the part's own labels in class order (merge the parts'
  // names with sort_class_labels, then use_class_names).
  Dataset data;
  std::int64_t first_line = 0;  // 1-based line of its first record; 0 when it has none
  // CsvLayout::category_positions of the read, for recode_categories (csv_categorical.hpp).
  std::vector<std::int32_t> category_positions;
  // Bytes of the file read beyond the header: the nominal range, the byte before it and the rest
  // of its last record. Without a header the first record is read for its field count too.
  std::uint64_t bytes_read = 0;
};

// Reads the records that start in part `part`'s nominal range, in parallel in the caller's
// task_arena. `before` is the sum of the scans of parts 0 .. part-1. Messages name the same
// FILE:LINE:COLUMN as read_csv's. options.target_kind must be numeric or classes (unless
// no_target): with automatic, one part could find numbers where another finds labels.
CsvPart read_csv_part(const std::filesystem::path& path, const CsvOptions& options, int part,
                      int parts, CsvPartScan before);

// Part `part` of a file as a CsvStream (same rules, memory bound and messages as CsvStream over
// the whole file; rewind() starts again at the part's first record).
std::unique_ptr<CsvStream> open_csv_stream_part(const std::filesystem::path& path,
                                                const CsvOptions& options,
                                                std::vector<std::string> class_names,
                                                std::size_t block_bytes, int part, int parts,
                                                CsvPartScan before);

// The class labels of part `part`'s records, sorted as read_csv sorts them, in one streaming pass.
std::vector<std::string> collect_class_names_part(const std::filesystem::path& path,
                                                  const CsvOptions& options, int part, int parts,
                                                  CsvPartScan before);

// The vocabularies of part `part`'s categorical columns (uncapped), in one streaming pass.
std::vector<CategoricalColumn> collect_categories_part(const std::filesystem::path& path,
                                                       const CsvOptions& options, int part,
                                                       int parts, CsvPartScan before);

// Part `part`'s place in the file, in file offsets.
struct CsvPartRange {
  std::vector<std::string> names;   // as read_csv names the columns
  std::uint64_t records_begin = 0;  // b
  std::uint64_t records_end = 0;    // b + n
  std::uint64_t begin = 0;          // the nominal range
  std::uint64_t end = 0;
  std::int64_t header_lines = 0;  // '\n' before b
};

// CsvStream's state for streaming one part; CsvStream befriends it.
struct CsvStreamAccess {
  // Makes a new stream (nothing read yet) stream the records that start in `range` only.
  static void restrict_to_part(CsvStream& stream, CsvPartRange range, CsvPartScan before);
  // Runs a new stream, made with target_kind classes and no class names, to its end and
  // returns its labels in class order.
  static std::vector<std::string> collect_class_names(CsvStream& stream);
  // Runs a new stream to its end counting the texts of its categorical columns (its
  // CsvOptions::categories are not used) and returns their vocabularies, not capped.
  static std::vector<CategoricalColumn> collect_categories(CsvStream& stream);
  // The same collection during another pass (scan_stream_part's): from the next rewind() the
  // stream, made with target_kind classes and no class names, reads labels instead of targets.
  // end_label_collection returns them sorted; use_class_names then makes the stream read its
  // targets as `names` (all its labels among them) from its next rewind() on.
  static void begin_label_collection(CsvStream& stream);
  static std::vector<std::string> end_label_collection(CsvStream& stream);
  static void use_class_names(CsvStream& stream, std::vector<std::string> names);
};

}  // namespace shardprop::detail
