// The CSV reader's internal pieces against naive references: chunk cutting (record starts by
// quote parity), the short-number fast path (against fast_float), and the padded file mapping.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "base/mapped_file.hpp"
#include "data/csv_chunks.hpp"
#include "data/csv_number.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

using shardprop::detail::CsvChunk;
using shardprop::detail::split_csv_chunks;

// Record starts as split_csv_chunks defines them, one byte at a time: offset 0, and every
// offset after a '\n' preceded by an even number of '"', except the end.
std::vector<std::size_t> naive_record_starts(const std::string& text) {
  std::vector<std::size_t> starts;
  if (!text.empty()) starts.push_back(0);
  std::size_t quotes = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '"') ++quotes;
    if (text[i] == '\n' && quotes % 2 == 0 && i + 1 < text.size()) starts.push_back(i + 1);
  }
  return starts;
}

// Chunks tile the text, start at record starts and count the record starts they hold.
void check_chunks(const std::string& text, std::size_t chunk_bytes) {
  CAPTURE(text, chunk_bytes);
  const std::vector<std::size_t> starts = naive_record_starts(text);
  const std::vector<CsvChunk> chunks = split_csv_chunks(text, chunk_bytes);
  if (text.empty()) {
    CHECK(chunks.empty());
    return;
  }
  REQUIRE(!chunks.empty());
  CHECK(chunks.front().begin == 0);
  CHECK(chunks.back().end == text.size());
  std::int64_t rows = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    const CsvChunk& chunk = chunks[k];
    CAPTURE(k);
    CHECK(chunk.begin < chunk.end);
    if (k > 0) CHECK(chunk.begin == chunks[k - 1].end);
    CHECK(chunk.first_row == rows);
    CHECK(std::binary_search(starts.begin(), starts.end(), chunk.begin));
    const auto inside = std::count_if(starts.begin(), starts.end(), [&](std::size_t s) {
      return s >= chunk.begin && s < chunk.end;
    });
    CHECK(chunk.rows == inside);
    rows += chunk.rows;
  }
  CHECK(rows == static_cast<std::int64_t>(starts.size()));
}

// Well-formed records: quoted fields with delimiters, doubled quotes and line breaks.
std::string random_records(std::mt19937_64& bits, int records) {
  std::string text;
  for (int r = 0; r < records; ++r) {
    const int fields = 1 + static_cast<int>(bits() % 4);
    for (int f = 0; f < fields; ++f) {
      if (f > 0) text += ',';
      switch (bits() % 4) {
        case 0:
          text += std::to_string(bits() % 1000);
          break;
        case 1:
          text += "\"a,\nb\"";
          break;
        case 2:
          text += "\"\"\"\"";
          break;
        default:
          break;
      }
    }
    text += bits() % 3 == 0 ? "\r\n" : "\n";
  }
  if (bits() % 2 == 0 && !text.empty()) text.pop_back();  // no final line end
  return text;
}

// Any bytes from a CSV-ish alphabet, quotes balanced or not.
std::string random_bytes(std::mt19937_64& bits, std::size_t size) {
  static const char alphabet[] = {'"', '\n', ',', 'x', '\r', '1'};
  std::string text;
  for (std::size_t i = 0; i < size; ++i) text += alphabet[bits() % sizeof alphabet];
  return text;
}

// A buffer whose text is followed by zero padding, as the reader guarantees.
struct Padded {
  explicit Padded(const std::string& text) : bytes(text.size() + 64, '\0') {
    std::memcpy(bytes.data(), text.data(), text.size());
  }
  const char* begin() const { return bytes.data(); }
  const char* end() const { return bytes.data() + bytes.size() - 64; }
  std::vector<char> bytes;
};

}  // namespace

TEST_CASE("chunks start at record starts and count them, whatever the chunk size", "[csv]") {
  std::mt19937_64 bits(7);
  const std::size_t chunk_bytes = GENERATE(1, 2, 3, 7, 16, 64, 1000);
  for (int trial = 0; trial < 40; ++trial) {
    check_chunks(random_records(bits, static_cast<int>(bits() % 30)), chunk_bytes);
    check_chunks(random_bytes(bits, bits() % 300), chunk_bytes);
  }
  SECTION("edge cases") {
    for (const std::string text :
         {"", "\n", "\n\n", "x", "\"", "\"\n\"\n", "a\nb\nc\n", "\"\"\n\"\"\n", "\n\"\n\n\"\n"}) {
      check_chunks(text, chunk_bytes);
    }
  }
}

TEST_CASE("chunks of a large text without quotes reuse their newline counts", "[csv]") {
  std::string text;
  for (int r = 0; r < 20000; ++r) text += std::to_string(r) + ",1.5,2\n";
  for (const std::size_t chunk_bytes : {std::size_t{1}, std::size_t{100}, std::size_t{4096}}) {
    const std::vector<CsvChunk> chunks = split_csv_chunks(text, chunk_bytes);
    CHECK(chunks.back().first_row + chunks.back().rows == 20000);
    // Raised to at most kMaxChunks pieces.
    CHECK(chunks.size() <= shardprop::detail::kMaxChunks);
  }
  CHECK(shardprop::detail::count_byte(text, '\n') == 20000);
}

TEST_CASE("the short-number fast path agrees with fast_float bit for bit", "[csv]") {
  std::mt19937_64 bits(11);
  static const char alphabet[] = {'0', '1', '2', '5', '9', '.', '-', 'e', '+', ' ', 'x'};
  int fast = 0;
  for (int trial = 0; trial < 200000; ++trial) {
    std::string text;
    const std::size_t size = bits() % 20;
    for (std::size_t i = 0; i < size; ++i) {
      // Mostly digits, so that many strings are numbers.
      const std::uint64_t draw = bits();
      text += draw % 4 != 0 ? static_cast<char>('0' + draw % 10) : alphabet[draw % sizeof alphabet];
    }
    const Padded padded(text);
    float reference = 0.0f;
    const auto result = fast_float::from_chars(padded.begin(), padded.end(), reference);
    const bool whole = result.ec == std::errc() && result.ptr == padded.end();
    float value = 0.0f;
    if (shardprop::detail::parse_short_float(padded.begin(), padded.end(), value)) {
      ++fast;
      CAPTURE(text);
      REQUIRE(whole);
      REQUIRE(std::memcmp(&value, &reference, sizeof value) == 0);
    }
    float full = 0.0f;
    const auto status = shardprop::detail::parse_float(padded.begin(), padded.end(), full);
    if (whole && std::isfinite(reference) && !text.empty() && text[0] != '+') {
      CAPTURE(text);
      REQUIRE(status == shardprop::detail::NumberStatus::finite);
      REQUIRE(std::memcmp(&full, &reference, sizeof full) == 0);
    }
  }
  CHECK(fast > 10000);  // the fast path was exercised
}

TEST_CASE("a mapped file is followed by zero padding, even at a page boundary", "[csv]") {
  shardprop::test::TempDir dir;
  for (const std::size_t size : {std::size_t{1}, std::size_t{4095}, std::size_t{4096},
                                 std::size_t{8192}, std::size_t{10000}}) {
    CAPTURE(size);
    shardprop::test::write_text(dir / "f", std::string(size, 'a'));
    const shardprop::detail::MappedFile file(dir / "f");
    CHECK(file.mapped());
    REQUIRE(file.size() == size);
    CHECK(file.data()[size - 1] == 'a');
    for (std::size_t i = 0; i < shardprop::detail::MappedFile::kPadding; ++i) {
      CHECK(file.data()[size + i] == '\0');
    }
  }
}

TEST_CASE("a CSV arriving through a pipe is read too", "[csv]") {
  shardprop::test::TempDir dir;
  const std::filesystem::path fifo = dir / "pipe.csv";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::string content = "x,y\n";
  for (int r = 0; r < 5000; ++r) content += std::to_string(r) + "," + std::to_string(r % 3) + "\n";
  std::thread writer([&] { shardprop::test::write_text(fifo, content); });
  const shardprop::Dataset data = shardprop::read_csv(fifo);
  writer.join();
  CHECK(data.rows == 5000);
  CHECK(data.features[4999] == 4999.0f);
  CHECK(data.targets[4999] == 1.0f);
}
