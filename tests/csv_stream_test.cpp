// CsvStream: the same rows, labels and errors as read_csv for any block size, and memory that
// stays bounded however large the file.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>

#include "shardprop/communicator.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/error.hpp"

using namespace shardprop;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& text) {
    static int counter = 0;
    path = fs::temp_directory_path() / ("shardprop_stream_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(++counter) + ".csv");
    std::ofstream(path, std::ios::binary) << text;
  }
  ~TempFile() { fs::remove(path); }
};

// All chunks of a stream, concatenated.
Dataset read_all(DataStream& stream) {
  Dataset all;
  Dataset chunk;
  bool first = true;
  stream.rewind();
  while (stream.next(chunk)) {
    REQUIRE(chunk.rows > 0);
    if (first) {
      all = chunk;
      first = false;
      continue;
    }
    all.rows += chunk.rows;
    all.features.insert(all.features.end(), chunk.features.begin(), chunk.features.end());
    all.targets.insert(all.targets.end(), chunk.targets.begin(), chunk.targets.end());
  }
  return all;
}

void require_same(const Dataset& a, const Dataset& b) {
  REQUIRE(a.rows == b.rows);
  REQUIRE(a.feature_count == b.feature_count);
  REQUIRE(a.target_width == b.target_width);
  CHECK(a.feature_names == b.feature_names);
  CHECK(a.target_names == b.target_names);
  REQUIRE(a.features.size() == b.features.size());
  CHECK(std::memcmp(a.features.data(), b.features.data(), a.features.size() * 4) == 0);
  CHECK(std::memcmp(a.targets.data(), b.targets.data(), a.targets.size() * 4) == 0);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Quoted fields with delimiters, "" and line breaks, CRLF, a BOM and trailing blank lines.
const std::string kTricky =
    "\xEF\xBB\xBF"
    "a,\"b,1\",label\r\n"
    "1,2,x\r\n"
    "\"3\",\" 4 \",\"y\"\r\n"
    "5,6,\"line\nbreak\"\n"
    "7.5,-8e-3,\"quote \"\"q\"\"\"\n"
    "9,10,x\n"
    "\n  \n";

}  // namespace

TEST_CASE("a stream yields exactly read_csv's rows at every block size", "[csv][stream]") {
  const TempFile file(kTricky);
  CsvOptions options;
  options.target_kind = TargetKind::classes;
  const Dataset whole = read_csv(file.path, options);
  const std::vector<std::string> classes = collect_class_names(file.path, options);
  CHECK(classes == whole.class_names);
  const std::size_t block = GENERATE(1, 2, 3, 5, 8, 13, 64, 4096);
  const std::size_t chunk = GENERATE(1, 7, 1 << 20);
  CAPTURE(block, chunk);
  options.chunk_bytes = chunk;
  CsvStream stream(file.path, options, classes, block);
  const Dataset streamed = read_all(stream);
  require_same(streamed, whole);
  CHECK(streamed.class_names == whole.class_names);

  SECTION("and again after a rewind") { require_same(read_all(stream), whole); }
}

TEST_CASE("stream errors name the same file, line and column as read_csv", "[csv][stream]") {
  const std::string bad = GENERATE(as<std::string>{},
                                   "a,b,c\n1,2,3\n4,5,6\n7,x,9\n",       // not a number, line 4
                                   "a,b,c\n1,2,3\n4,\"5\n5\",6\n7,8\n",  // short row after a break
                                   "a,b,c\n1,2,3\n\n4,5,6\n",            // blank line inside
                                   "a,b,c\n1,2,3\n4,\"5,6\n",            // unterminated quote
                                   // Found by fuzzing: blank lines alone are an empty file, in
                                   // blocks that end before the file does too.
                                   "\r\n\r\n \n\n", "\xEF\xBB\xBF\n\t\n");
  CAPTURE(bad);
  const TempFile file(bad);
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  const std::string expected = error_of([&] { read_csv(file.path, options); });
  REQUIRE(expected != "(no error)");
  for (const std::size_t block : {1, 4, 9, 1000}) {
    CAPTURE(block);
    CsvStream stream(file.path, options, {}, block);
    CHECK(error_of([&] { read_all(stream); }) == expected);
  }
}

// Found by fuzzing (tests/fuzz/corpus/csv_stream/chunk_bytes_zero): a stream read with
// chunk_bytes 0, and failed on a quote delimiter with another message than read_csv's.
TEST_CASE("a stream rejects the options read_csv rejects with the same message", "[csv][stream]") {
  const TempFile file("a,b\n1,2\n3,4\n");
  CsvOptions options;
  SECTION("chunk_bytes 0") { options.chunk_bytes = 0; }
  SECTION("a quote as the delimiter") { options.delimiter = '"'; }
  SECTION("a NUL delimiter") { options.delimiter = '\0'; }
  const std::string expected = error_of([&] { read_csv(file.path, options); });
  REQUIRE(expected != "(no error)");
  CHECK(error_of([&] {
          CsvStream stream(file.path, options, {}, 4);
          read_all(stream);
        }) == expected);
}

TEST_CASE("a streamed label outside the given classes is an error that names it", "[csv][stream]") {
  const TempFile file("a,label\n1,cat\n2,dog\n3,bird\n");
  CsvOptions options;
  CsvStream stream(file.path, options, {"cat", "dog"}, 8);
  CHECK_THAT(error_of([&] { read_all(stream); }),
             Contains(":4:") && Contains("'bird'") && Contains("'label'"));
  CsvStream numeric(file.path, CsvOptions{});  // without class names: numbers expected
  CHECK_THAT(error_of([&] { read_all(numeric); }), Contains("'cat' is not a number"));
}

TEST_CASE("a stream holds bounded memory however large the file", "[csv][stream]") {
  // Two files, 24x and 48x the block size: the peak must not grow with the file.
  constexpr std::size_t kBlock = std::size_t{64} << 10;
  std::mt19937 rng(5);
  auto make = [&](std::size_t bytes) {
    std::string text = "x1,x2,x3,x4,y\n";
    char line[96];
    while (text.size() < bytes) {
      std::snprintf(line, sizeof line, "%lu,%lu,%lu,%lu,%lu\n", rng() % 1000, rng() % 1000,
                    rng() % 1000, rng() % 1000, rng() % 2);
      text += line;
    }
    return text;
  };
  const TempFile small(make(24 * kBlock));
  const TempFile large(make(48 * kBlock));
  std::size_t peaks[2] = {};
  std::int64_t rows[2] = {};
  int i = 0;
  for (const TempFile* f : {&small, &large}) {
    CsvStream stream(f->path, CsvOptions{}, {}, kBlock);
    Dataset chunk;
    while (stream.next(chunk)) rows[i] += chunk.rows;
    peaks[i] = stream.peak_bytes();
    CHECK(rows[i] == read_csv(f->path).rows);
    ++i;
  }
  CAPTURE(peaks[0], peaks[1]);
  CHECK(rows[1] > 19 * rows[0] / 10);
  // One block buffer plus one block's parsed floats (short fields: about 2 bytes each, so up to
  // ~2 floats of 4 bytes per byte of text).
  CHECK(peaks[0] <= 12 * kBlock);
  CHECK(peaks[1] <= peaks[0] + kBlock);
}

TEST_CASE("a stream standardizes its chunks when asked", "[csv][stream]") {
  const TempFile file("a,b,y\n1,10,0\n3,10,1\n5,10,0\n");
  CsvStream stream(file.path, CsvOptions{}, {}, 6);
  const Standardization s = Standardization::fit(stream);
  CHECK(s.mean == std::vector<float>{3.0f, 10.0f});
  stream.set_standardization(s);
  const Dataset all = read_all(stream);
  CHECK(all.features[0] == Approx(-1.2247449));
  CHECK(all.features[1] == 0.0f);
}

TEST_CASE("the row scan collects the class labels a pass of their own collects", "[csv][stream]") {
  const TempFile file(kTricky);
  CsvOptions options;
  options.target_kind = TargetKind::classes;
  const std::size_t block = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{4096});
  CAPTURE(block);
  const std::vector<std::string> expected = collect_class_names(file.path, options);
  REQUIRE(expected.size() == 4);
  const Communicator one;
  std::unique_ptr<CsvStream> stream = open_csv_stream_part(file.path, options, one, {}, block);
  CsvStream given(file.path, options, expected, block);

  SECTION("reading the stream itself") {
    ClassLabelScan labels{stream.get(), {}};
    Standardization fitted;
    const StreamPart part = scan_stream_part(*stream, one, &fitted, &labels);
    CHECK(labels.names == expected);
    CHECK(part.total_rows == 5);
    const Standardization whole = Standardization::fit(given);
    CHECK(fitted.mean == whole.mean);
    CHECK(fitted.scale == whole.scale);
    // From then on the stream reads its targets as those classes.
    require_same(read_all(*stream), read_all(given));
  }
  SECTION("through a split of it: the labels of every row, held out or not") {
    SplitStream training(*stream, 0.5, 11, SplitStream::Part::training);
    ClassLabelScan labels{stream.get(), {}};
    const StreamPart part = scan_stream_part(training, one, nullptr, &labels);
    CHECK(part.total_rows < 5);
    CHECK(labels.names == expected);
    require_same(read_all(*stream), read_all(given));
  }
  SECTION("a stream that already has class names is refused") {
    ClassLabelScan labels{&given, {}};
    CHECK_THAT(error_of([&] { scan_stream_part(given, one, nullptr, &labels); }),
               Contains("without class names"));
  }
}
