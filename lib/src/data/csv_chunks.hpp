// Cutting CSV records into chunks that start at record boundaries, so each chunk can be parsed
// on its own, in parallel, straight into its rows of the output. Leaves out parsing fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace shardprop::detail {

struct CsvChunk {
  std::size_t begin = 0;       // offset of its first record
  std::size_t end = 0;         // offset of the next chunk's first record, or the text's size
  std::int64_t first_row = 0;  // records in the chunks before it
  std::int64_t rows = 0;       // records that start in [begin, end)
};

// At most this many raw chunks: a smaller chunk_bytes is raised (results do not depend on it).
inline constexpr std::size_t kMaxChunks = std::size_t{1} << 18;

// text holds records only (no header): a record starts at offset 0 and after every '\n' outside
// quotes, except at the very end. Inside or outside quotes is the parity of the '"' before a
// position, which is exact for RFC 4180 text; for malformed quoting the cuts may fall inside a
// record, and the parser then finds a chunk that does not end where the next begins.
//
// Three steps over raw pieces of chunk_bytes (>= 1) bytes, the first and last in parallel in
// the caller's task_arena: count '"' and '\n' per piece; a prefix sum of the quote counts gives
// the quote state at each piece's start; each piece then finds its first record start and counts
// the records starting in it (a piece without quotes, entered outside quotes, reuses its newline
// count). Chunks run from one piece's first record start to the next; empty chunks are dropped.
// Deterministic: the result depends only on text and chunk_bytes.
//
// With a comment character, a record start whose byte is that character is a comment line: it
// starts no record (rows counts records only), though a chunk may begin at it. Its quotes count
// in the parity like any others: a comment line with an odd number of them misplaces the cuts
// after it, and the parser, meeting it first, reports it.
std::vector<CsvChunk> split_csv_chunks(std::string_view text, std::size_t chunk_bytes,
                                       char comment = '\0');

// Occurrences of `byte` in text (SSE2 where available).
std::size_t count_byte(std::string_view text, char byte);

struct QuoteAndNewlineCounts {
  std::size_t quotes = 0;
  std::size_t newlines = 0;
};

// The '"' and '\n' in text, in one pass (SSE2 where available).
QuoteAndNewlineCounts count_quotes_and_newlines(std::string_view text);

// The same counts, over pieces of text in parallel in the caller's task_arena.
QuoteAndNewlineCounts count_quotes_and_newlines_in_parallel(std::string_view text);

// The offset just past the last '\n' outside quotes in text, or 0; `quotes` is the '"' in text,
// which starts outside quotes (so a position is outside quotes when the quotes before it are
// even). For cutting a block of records after its last complete one.
std::size_t last_record_end(std::string_view text, std::size_t quotes);

inline constexpr std::size_t kNoRecordStart = static_cast<std::size_t>(-1);

// The offset just past the first '\n' outside quotes in text[from, to), or kNoRecordStart;
// inside_quotes is the quote state at `from` (by the parity rule above). Reads text[from, ...)
// only up to that '\n'.
std::size_t next_record_start(std::string_view text, std::size_t from, std::size_t to,
                              bool inside_quotes);

}  // namespace shardprop::detail
