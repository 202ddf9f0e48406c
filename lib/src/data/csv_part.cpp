// A part of a CSV file: its nominal range from the records region's size, its first record from
// the quote parity before it, its end where the first record at or after its nominal end starts.
// The parse itself is read_csv's (read_csv_rows) and CsvStream's, over those bounds. Compressed
// input and standard input have no byte offsets to split by: one part of them is the whole, and
// more parts are refused.
#include "data/csv_part.hpp"

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "data/csv_chunks.hpp"
#include "data/csv_format.hpp"
#include "data/csv_reader.hpp"
#include "data/input_source.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

// n·k/P rounded down, without the overflow of n·k: with n = q·P + r it is q·k + r·k/P, and
// r·k < P² fits.
std::uint64_t nominal_offset(std::uint64_t n, int k, int parts) {
  const auto count = static_cast<std::uint64_t>(parts);
  const auto index = static_cast<std::uint64_t>(k);
  return n / count * index + n % count * index / count;
}

// The name a decompressed copy of `file` could take: without its .gz or .zst, ending in .csv.
std::string decompressed_name(const std::filesystem::path& file) {
  std::filesystem::path name = file.filename();
  const std::string extension = name.extension().string();
  if (extension == ".gz" || extension == ".zst" || extension == ".zstd") name.replace_extension();
  if (name.extension() != ".csv") name += ".csv";
  return name.string();
}

// Checks the options and the part number; refuses several parts of input that has no byte
// offsets. Returns whether the input is read whole only (then parts is 1).
bool check_part(const std::filesystem::path& path, const CsvOptions& options, int part, int parts) {
  const std::string file = input_name(path);
  check_csv_options(file, options);
  if (parts < 1 || part < 0 || part >= parts) {
    throw Error(file + ": there is no part " + std::to_string(part) + " of " +
                std::to_string(parts) + " (parts count from 0)");
  }
  if (is_standard_input(path)) {
    if (parts == 1) return true;
    throw Error(file +
                " is standard input: ranks read their parts by byte offsets, which a pipe "
                "does not have; write it to a file first and give that file's name");
  }
  const Compression compression = file_compression(path);
  if (compression == Compression::none) return false;
  if (parts == 1) return true;
  const std::string cat = compression == Compression::gzip ? "zcat" : "zstdcat";
  throw Error(file + " is " + compression_name(compression) +
              "-compressed: ranks read their parts by byte offsets, which compressed data does "
              "not have; decompress it first, e.g. " +
              cat + " " + file + " > " + decompressed_name(path));
}

// A file's bytes (mapped, or decompressed into memory when it is the only part) with its
// records region and one part's range in it.
struct MappedPart {
  MappedPart(const std::filesystem::path& path, const CsvOptions& options, int part, int parts)
      : file(input_name(path)) {
    check_part(path, options, part, parts);
    mapped.emplace(path);
    region = find_csv_records(mapped->view(), true, file, options);
    range.names = region.names;
    range.records_begin = region.offset + region.begin;
    range.records_end = region.offset + region.text.size();
    const std::uint64_t n = range.records_end - range.records_begin;
    range.begin = range.records_begin + nominal_offset(n, part, parts);
    range.end = range.records_begin + nominal_offset(n, part + 1, parts);
    range.header_lines =
        static_cast<std::int64_t>(count_byte(region.text.substr(0, region.begin), '\n'));
  }

  std::string file;
  std::optional<InputText> mapped;
  CsvRecordsRegion region;
  CsvPartRange range;
};

}  // namespace

CsvPartScan scan_csv_part(const std::filesystem::path& path, const CsvOptions& options, int part,
                          int parts) {
  const MappedPart in(path, options, part, parts);
  const QuoteAndNewlineCounts counts = count_quotes_and_newlines_in_parallel(
      in.mapped->view().substr(in.range.begin, in.range.end - in.range.begin));
  return {counts.quotes, counts.newlines};
}

void check_csv_part(const std::filesystem::path& path, const CsvOptions& options, int part,
                    int parts) {
  // The whole of a compressed file is not decompressed only to check its header: the read that
  // follows reports a bad one.
  if (check_part(path, options, part, parts)) return;
  const MappedPart in(path, options, part, parts);
}

CsvPart read_csv_part(const std::filesystem::path& path, const CsvOptions& options, int part,
                      int parts, CsvPartScan before) {
  if (options.target_kind == TargetKind::automatic && !options.no_target) {
    throw Error(input_name(path) +
                ": reading a CSV in parts needs target_kind numeric or classes: with automatic, "
                "one part could find labels where another finds numbers");
  }
  const MappedPart in(path, options, part, parts);
  const CsvPartRange& range = in.range;
  const std::string_view bytes = in.mapped->view();
  CsvPart result;
  const CsvLayout layout = plan_columns(range.names, options, in.file, result.data);

  // [first, stop): the records that start in the nominal range. A record start in [begin, end)
  // follows a '\n' in [begin - 1, end - 1), so the search starts a byte early.
  const bool at_records_begin = range.begin == range.records_begin;
  const std::uint64_t origin = at_records_begin ? range.begin : range.begin - 1;
  std::uint64_t first = range.end;
  std::uint64_t stop = range.end;
  if (range.begin < range.end) {
    if (at_records_begin) {
      first = range.begin;
    } else {
      const bool inside_quotes = ((before.quotes - (bytes[origin] == '"' ? 1 : 0)) & 1) != 0;
      const std::size_t found = next_record_start(bytes, origin, range.end - 1, inside_quotes);
      if (found != kNoRecordStart) first = found;
    }
    if (first < range.end) {
      // `first` starts outside quotes.
      const bool inside_quotes =
          (count_byte(bytes.substr(first, range.end - 1 - first), '"') & 1) != 0;
      const std::size_t found =
          next_record_start(bytes, range.end - 1, range.records_end, inside_quotes);
      stop = found != kNoRecordStart ? found : range.records_end;
    }
    result.bytes_read = stop - origin;
  }
  std::int64_t lines_before = 0;
  if (first < stop) {
    lines_before =
        range.header_lines + static_cast<std::int64_t>(before.newlines) +
        static_cast<std::int64_t>(count_byte(bytes.substr(range.begin, first - range.begin), '\n'));
    result.first_line = lines_before + 1;
  }

  // Text runs on to the end of the records, as in read_csv: a fault found by parsing on past
  // malformed quoting is reported where read_csv reports it.
  const std::string_view text = bytes.substr(first, range.records_end - first);
  const FaultReport report(in.file, text, &range.names,
                           static_cast<std::int64_t>(range.names.size()), lines_before);
  read_csv_rows(in.file, layout, range.names, options, {text.data(), text.data() + text.size()},
                text.substr(0, stop - first), report, result.data);
  result.category_positions = layout.category_positions;
  return result;
}

std::unique_ptr<CsvStream> open_csv_stream_part(const std::filesystem::path& path,
                                                const CsvOptions& options,
                                                std::vector<std::string> class_names,
                                                std::size_t block_bytes, int part, int parts,
                                                CsvPartScan before) {
  // The one part of compressed input is all of it: a stream over the whole.
  if (check_part(path, options, part, parts)) {
    return std::make_unique<CsvStream>(path, options, std::move(class_names), block_bytes);
  }
  // The mapping only finds the header and the end of the records; the stream reads the rest.
  const MappedPart in(path, options, part, parts);
  auto stream = std::make_unique<CsvStream>(path, options, std::move(class_names), block_bytes);
  CsvStreamAccess::restrict_to_part(*stream, in.range, before);
  return stream;
}

std::vector<std::string> collect_class_names_part(const std::filesystem::path& path,
                                                  const CsvOptions& options, int part, int parts,
                                                  CsvPartScan before) {
  CsvOptions labels = options;
  labels.target_kind = TargetKind::classes;
  const std::unique_ptr<CsvStream> stream =
      open_csv_stream_part(path, labels, {}, CsvStream::kDefaultBlockBytes, part, parts, before);
  return CsvStreamAccess::collect_class_names(*stream);
}

}  // namespace shardprop::detail

namespace shardprop::detail {

std::vector<CategoricalColumn> collect_categories_part(const std::filesystem::path& path,
                                                       const CsvOptions& options, int part,
                                                       int parts, CsvPartScan before) {
  CsvOptions plan = options;
  plan.categories.clear();
  const std::unique_ptr<CsvStream> stream =
      open_csv_stream_part(path, plan, {}, CsvStream::kDefaultBlockBytes, part, parts, before);
  return CsvStreamAccess::collect_categories(*stream);
}

}  // namespace shardprop::detail
