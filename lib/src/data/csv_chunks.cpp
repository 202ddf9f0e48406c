// split_csv_chunks: quote and newline counts per piece, a prefix sum of the quote parity, then
// record starts per piece. The counting loop is the only part that sees every byte of a plain
// numeric file, so it uses 16-byte compares with byte counters.
#include "data/csv_chunks.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace shardprop::detail {
namespace {

constexpr std::size_t kNone = static_cast<std::size_t>(-1);

struct ByteCounts {
  std::size_t first = 0;   // occurrences of the first byte
  std::size_t second = 0;  // occurrences of the second byte
};

#if defined(__SSE2__)
std::size_t horizontal_sum(__m128i byte_counts) {
  const __m128i sums = _mm_sad_epu8(byte_counts, _mm_setzero_si128());
  return static_cast<std::size_t>(_mm_cvtsi128_si64(sums)) +
         static_cast<std::size_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums)));
}
#endif

// Counts two byte values in one pass.
ByteCounts count_two(const char* data, std::size_t size, char first, char second) {
  ByteCounts counts;
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i a = _mm_set1_epi8(first);
  const __m128i b = _mm_set1_epi8(second);
  while (size - i >= 16) {
    // Byte counters hold at most 255 before they are summed.
    const std::size_t blocks = std::min<std::size_t>((size - i) / 16, 255);
    __m128i count_a = _mm_setzero_si128();
    __m128i count_b = _mm_setzero_si128();
    for (std::size_t block = 0; block < blocks; ++block, i += 16) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
      count_a = _mm_sub_epi8(count_a, _mm_cmpeq_epi8(bytes, a));
      count_b = _mm_sub_epi8(count_b, _mm_cmpeq_epi8(bytes, b));
    }
    counts.first += horizontal_sum(count_a);
    counts.second += horizontal_sum(count_b);
  }
#endif
  for (; i < size; ++i) {
    counts.first += data[i] == first;
    counts.second += data[i] == second;
  }
  return counts;
}

// The records starting in one piece: a start is owned by the piece holding the '\n' before it
// (offset 0 by the first piece).
struct PieceStarts {
  std::size_t first = kNone;
  std::int64_t count = 0;
};

// The '\n' in text[begin, end) followed by `comment` (comment lines that start after them).
std::int64_t count_comment_starts(std::string_view text, std::size_t begin, std::size_t end,
                                  char comment) {
  std::int64_t count = 0;
  const char* data = text.data();
  const std::size_t last = std::min(end + 1, text.size());
  for (std::size_t i = begin + 1; i < last;) {
    const void* found = std::memchr(data + i, comment, last - i);
    if (found == nullptr) break;
    const auto at = static_cast<std::size_t>(static_cast<const char*>(found) - data);
    count += data[at - 1] == '\n';
    i = at + 1;
  }
  return count;
}

PieceStarts find_starts(std::string_view text, std::size_t begin, std::size_t end,
                        bool inside_quotes, const ByteCounts& counts, char comment) {
  PieceStarts starts;
  const char* data = text.data();
  const std::size_t size = text.size();
  const bool comments = comment != '\0';
  if (begin == 0) {
    starts.first = 0;
    starts.count = comments && data[0] == comment ? 0 : 1;
  }
  if (!inside_quotes && counts.first == 0) {
    // No quote can change the state: every '\n' ends a record.
    starts.count += static_cast<std::int64_t>(counts.second);
    if (data[size - 1] == '\n' && size - 1 >= begin && size - 1 < end) --starts.count;
    if (comments) starts.count -= count_comment_starts(text, begin, end, comment);
    if (starts.first == kNone) {
      const void* newline = std::memchr(data + begin, '\n', end - begin);
      if (newline != nullptr) {
        const auto after = static_cast<std::size_t>(static_cast<const char*>(newline) - data) + 1;
        if (after < size) starts.first = after;
      }
    }
    return starts;
  }
  for (std::size_t i = begin; i < end; ++i) {
    const char c = data[i];
    if (c == '"') {
      inside_quotes = !inside_quotes;
    } else if (c == '\n' && !inside_quotes && i + 1 < size) {
      if (starts.first == kNone) starts.first = i + 1;
      starts.count += comments && data[i + 1] == comment ? 0 : 1;
    }
  }
  return starts;
}

}  // namespace

std::size_t count_byte(std::string_view text, char byte) {
  return count_two(text.data(), text.size(), byte, byte).first;
}

QuoteAndNewlineCounts count_quotes_and_newlines(std::string_view text) {
  const ByteCounts counts = count_two(text.data(), text.size(), '"', '\n');
  return {counts.first, counts.second};
}

QuoteAndNewlineCounts count_quotes_and_newlines_in_parallel(std::string_view text) {
  constexpr std::size_t kPieceBytes = std::size_t{1} << 20;
  const std::size_t pieces = (text.size() + kPieceBytes - 1) / kPieceBytes;
  // Sums of counts: the same whatever the order they are added in.
  return tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>(0, pieces, 1), QuoteAndNewlineCounts{},
      [&](const tbb::blocked_range<std::size_t>& range, QuoteAndNewlineCounts sum) {
        for (std::size_t k = range.begin(); k != range.end(); ++k) {
          const QuoteAndNewlineCounts piece =
              count_quotes_and_newlines(text.substr(k * kPieceBytes, kPieceBytes));
          sum.quotes += piece.quotes;
          sum.newlines += piece.newlines;
        }
        return sum;
      },
      [](QuoteAndNewlineCounts a, const QuoteAndNewlineCounts& b) {
        a.quotes += b.quotes;
        a.newlines += b.newlines;
        return a;
      });
}

std::size_t next_record_start(std::string_view text, std::size_t from, std::size_t to,
                              bool inside_quotes) {
  while (from < to) {
    const void* found = std::memchr(text.data() + from, '\n', to - from);
    if (found == nullptr) return kNoRecordStart;
    const auto newline = static_cast<std::size_t>(static_cast<const char*>(found) - text.data());
    if ((count_byte(text.substr(from, newline - from), '"') & 1) != 0) {
      inside_quotes = !inside_quotes;
    }
    if (!inside_quotes) return newline + 1;
    from = newline + 1;
  }
  return kNoRecordStart;
}

std::vector<CsvChunk> split_csv_chunks(std::string_view text, std::size_t chunk_bytes,
                                       char comment) {
  const std::size_t size = text.size();
  if (size == 0) return {};
  const std::size_t piece_bytes =
      std::max({chunk_bytes, std::size_t{1}, (size + kMaxChunks - 1) / kMaxChunks});
  const std::size_t pieces = (size + piece_bytes - 1) / piece_bytes;
  auto piece_begin = [&](std::size_t k) { return std::min(k * piece_bytes, size); };

  std::vector<ByteCounts> counts(pieces);
  tbb::parallel_for(
      tbb::blocked_range<std::size_t>(0, pieces, 1),
      [&](const tbb::blocked_range<std::size_t>& range) {
        for (std::size_t k = range.begin(); k != range.end(); ++k) {
          const std::size_t begin = piece_begin(k);
          counts[k] = count_two(text.data() + begin, piece_begin(k + 1) - begin, '"', '\n');
        }
      },
      tbb::simple_partitioner());

  std::vector<char> inside_quotes(pieces);
  std::size_t quotes = 0;
  for (std::size_t k = 0; k < pieces; ++k) {
    inside_quotes[k] = static_cast<char>(quotes & 1);
    quotes += counts[k].first;
  }

  std::vector<PieceStarts> starts(pieces);
  tbb::parallel_for(
      tbb::blocked_range<std::size_t>(0, pieces, 1),
      [&](const tbb::blocked_range<std::size_t>& range) {
        for (std::size_t k = range.begin(); k != range.end(); ++k) {
          starts[k] = find_starts(text, piece_begin(k), piece_begin(k + 1), inside_quotes[k] != 0,
                                  counts[k], comment);
        }
      },
      tbb::simple_partitioner());

  // A piece without a record start of its own begins where the next one does (empty).
  std::vector<std::size_t> chunk_begin(pieces + 1);
  chunk_begin[pieces] = size;
  for (std::size_t k = pieces; k-- > 0;) {
    chunk_begin[k] = starts[k].first != kNone ? starts[k].first : chunk_begin[k + 1];
  }
  std::vector<CsvChunk> chunks;
  std::int64_t rows = 0;
  for (std::size_t k = 0; k < pieces; ++k) {
    // A piece whose line starts are all comment lines keeps its chunk (of no rows), so that
    // the parser checks those lines' quotes.
    if (starts[k].first == kNone) continue;
    chunks.push_back({chunk_begin[k], chunk_begin[k + 1], rows, starts[k].count});
    rows += starts[k].count;
  }
  return chunks;
}

std::size_t last_record_end(std::string_view text, std::size_t quotes) {
  std::size_t quotes_after = 0;
  for (std::size_t i = text.size(); i-- > 0;) {
    if (text[i] == '"') {
      ++quotes_after;
    } else if (text[i] == '\n' && (quotes - quotes_after) % 2 == 0) {
      return i + 1;
    }
  }
  return 0;
}

}  // namespace shardprop::detail
