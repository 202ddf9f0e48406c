// Compressed CSV input and standard input: gzip (one member or several) and zstd (one frame or
// several) give the plain file's rows and errors in read_csv, read_csv_cached, CsvStream and
// collect_class_names; damaged files give clear errors; parts of them are refused; the CLI
// reads `--data -` from a pipe.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cli_runner.hpp"
#include "data/csv_part.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

using namespace shardprop;
using namespace shardprop::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

enum class Format { gzip, gzip_members, zstd, zstd_frames };

const char* format_name(Format format) {
  switch (format) {
    case Format::gzip:
      return "gzip";
    case Format::gzip_members:
      return "gzip, 3 members";
    case Format::zstd:
      return "zstd";
    case Format::zstd_frames:
      return "zstd, 3 frames";
  }
  return "?";
}

// `text` cut into `pieces` parts, each compressed on its own (members or frames, concatenated).
std::vector<char> gzip(const std::string& text, int pieces = 1) {
  std::vector<char> out;
  for (int p = 0; p < pieces; ++p) {
    const std::size_t begin = text.size() * static_cast<std::size_t>(p) / pieces;
    const std::size_t end = text.size() * static_cast<std::size_t>(p + 1) / pieces;
    z_stream z{};
    REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::vector<char> member(deflateBound(&z, static_cast<uLong>(end - begin)) + 64);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data() + begin));
    z.avail_in = static_cast<uInt>(end - begin);
    z.next_out = reinterpret_cast<Bytef*>(member.data());
    z.avail_out = static_cast<uInt>(member.size());
    REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
    out.insert(out.end(), member.data(), member.data() + z.total_out);
    deflateEnd(&z);
  }
  return out;
}

std::vector<char> zstd(const std::string& text, int pieces = 1) {
  std::vector<char> out;
  for (int p = 0; p < pieces; ++p) {
    const std::size_t begin = text.size() * static_cast<std::size_t>(p) / pieces;
    const std::size_t end = text.size() * static_cast<std::size_t>(p + 1) / pieces;
    std::vector<char> frame(ZSTD_compressBound(end - begin));
    const std::size_t size =
        ZSTD_compress(frame.data(), frame.size(), text.data() + begin, end - begin, 3);
    REQUIRE(!ZSTD_isError(size));
    out.insert(out.end(), frame.data(), frame.data() + size);
  }
  return out;
}

std::vector<char> compress(Format format, const std::string& text) {
  switch (format) {
    case Format::gzip:
      return gzip(text);
    case Format::gzip_members:
      return gzip(text, 3);
    case Format::zstd:
      return zstd(text);
    case Format::zstd_frames:
      return zstd(text, 3);
  }
  return {};
}

// Rows with quoted labels, an escaped quote and a quoted line break; about `rows` × 40 bytes, so
// that a large `rows` spans several of the decompressor's blocks.
std::string labelled_csv(int rows) {
  std::mt19937_64 bits(5);
  std::string csv =
      "\xEF\xBB\xBF"
      "a,\"b,1\",label\r\n";
  const char* labels[] = {"x", "\"y\"", "\"line\nbreak\"", "\"quote \"\"q\"\"\""};
  char line[128];
  for (int r = 0; r < rows; ++r) {
    std::snprintf(line, sizeof line, "%d,%.6f,%s\n", r, static_cast<double>(uniform_pm1(bits)),
                  labels[bits() % 4]);
    csv += line;
  }
  return csv + "\n  \n";
}

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
  CHECK(a.class_names == b.class_names);
  REQUIRE(a.features.size() == b.features.size());
  REQUIRE(a.targets.size() == b.targets.size());
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

// Standard input replaced by a pipe that a thread fills with `bytes`, for the object's life.
class StandardInputFrom {
 public:
  explicit StandardInputFrom(std::vector<char> bytes) : bytes_(std::move(bytes)) {
    int ends[2];
    REQUIRE(::pipe(ends) == 0);
    saved_ = ::dup(STDIN_FILENO);
    REQUIRE(::dup2(ends[0], STDIN_FILENO) == STDIN_FILENO);
    ::close(ends[0]);
    writer_ = std::thread([this, fd = ends[1]] {
      std::size_t done = 0;
      while (done < bytes_.size()) {
        const ssize_t n = ::write(fd, bytes_.data() + done, bytes_.size() - done);
        if (n <= 0) break;  // the reader went away
        done += static_cast<std::size_t>(n);
      }
      ::close(fd);
    });
  }
  ~StandardInputFrom() {
    ::dup2(saved_, STDIN_FILENO);  // closes the pipe's read end: a blocked writer fails
    ::close(saved_);
    writer_.join();
  }
  StandardInputFrom(const StandardInputFrom&) = delete;
  StandardInputFrom& operator=(const StandardInputFrom&) = delete;

 private:
  std::vector<char> bytes_;
  int saved_ = -1;
  std::thread writer_;
};

std::vector<char> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

// Runs `PIPE | shardprop ARGS...` in DIR (run_cli with standard input from a pipe).
Run run_cli_from_pipe(const TempDir& dir, const std::string& pipe, const Args& args) {
  // Appended piecewise: GCC 12 misreports "literal" + string (-Wrestrict).
  std::string command = "cd ";
  command.append(shell_quote(dir.path().string())).append(" && ").append(pipe).append(" | ");
  command.append(shell_quote(SHARDPROP_CLI_PATH));
  for (const std::string& arg : args) command.append(" ").append(shell_quote(arg));
  const auto out = dir / "pipe.stdout";
  const auto err = dir / "pipe.stderr";
  command.append(" >").append(shell_quote(out.string()));
  command.append(" 2>").append(shell_quote(err.string()));
  const int status = std::system(command.c_str());
  Run run;
  REQUIRE(status != -1);
  REQUIRE(WIFEXITED(status));
  run.exit_code = WEXITSTATUS(status);
  run.out = read_text(out);
  run.err = read_text(err);
  return run;
}

}  // namespace

TEST_CASE("a compressed file gives the plain file's dataset bitwise at every chunk size",
          "[csv][compressed]") {
  TempDir dir;
  const std::string text = labelled_csv(60000);  // about 2.4 MB: several decompressed blocks
  write_text(dir / "plain.csv", text);
  const Format format =
      GENERATE(Format::gzip, Format::gzip_members, Format::zstd, Format::zstd_frames);
  CAPTURE(format_name(format));
  write_bytes(dir / "data.csv.gz", compress(format, text));
  CsvOptions options;
  const Dataset plain = read_csv(dir / "plain.csv", options);
  REQUIRE(plain.rows == 60000);
  REQUIRE(plain.class_names.size() == 4);

  SECTION("read_csv") {
    options.chunk_bytes = GENERATE(as<std::size_t>{}, 7, 4096, std::size_t{4} << 20);
    CAPTURE(options.chunk_bytes);
    require_same(read_csv(dir / "data.csv.gz", options), plain);
  }
  SECTION("read_csv_cached: the first call parses, the second reads the cache") {
    const Dataset first = read_csv_cached(dir / "data.csv.gz", options, dir / "cache");
    REQUIRE(directory_entries(dir / "cache").size() == 1);
    require_same(first, plain);
    require_same(read_csv_cached(dir / "data.csv.gz", options, dir / "cache"), plain);
  }
  SECTION("CsvStream and collect_class_names, twice over") {
    const std::vector<std::string> classes = collect_class_names(dir / "data.csv.gz", options);
    CHECK(classes == plain.class_names);
    const std::size_t block = GENERATE(as<std::size_t>{}, 4096, 100000, std::size_t{64} << 20);
    options.chunk_bytes = GENERATE(as<std::size_t>{}, 7, std::size_t{1} << 20);
    CAPTURE(block, options.chunk_bytes);
    options.target_kind = TargetKind::classes;
    CsvStream stream(dir / "data.csv.gz", options, classes, block);
    require_same(read_all(stream), plain);
    require_same(read_all(stream), plain);  // rewound: decompressed again from the start
  }
  SECTION("read_csv_part and open_csv_stream_part of one process read the whole") {
    options.target_kind = TargetKind::classes;
    const DatasetPart part = read_csv_part(dir / "data.csv.gz", options);
    CHECK(part.total_rows == plain.rows);
    require_same(part.rows, plain);
    const std::unique_ptr<CsvStream> stream =
        open_csv_stream_part(dir / "data.csv.gz", options, Communicator{}, plain.class_names);
    require_same(read_all(*stream), plain);
  }
}

TEST_CASE("a compressed file gives the plain file's errors, with the same line and column",
          "[csv][compressed]") {
  const std::string bad = GENERATE(as<std::string>{},
                                   "a,b,c\n1,2,3\n4,5,6\n7,x,9\n",       // not a number, line 4
                                   "a,b,c\n1,2,3\n4,\"5\n5\",6\n7,8\n",  // short row after a break
                                   "a,b,c\n1,2,3\n\n4,5,6\n",            // blank line inside
                                   "a,b,c\n1,2,3\n4,\"5,6\n",            // unterminated quote
                                   "\r\n\r\n \n\n");                     // blank lines only
  const Format format = GENERATE(Format::gzip, Format::zstd_frames);
  CAPTURE(bad, format_name(format));
  TempDir dir;
  // The same name for both, so the messages are the same text.
  const std::filesystem::path file = dir / "bad.csv";
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  write_text(file, bad);
  const std::string expected = error_of([&] { read_csv(file, options); });
  REQUIRE(expected != "(no error)");
  std::vector<std::string> streamed;
  for (const std::size_t block : {1, 9, 1000}) {
    CsvStream stream(file, options, {}, block);
    streamed.push_back(error_of([&] { read_all(stream); }));
  }
  write_bytes(file, compress(format, bad));
  CHECK(error_of([&] { read_csv(file, options); }) == expected);
  CHECK(error_of([&] { read_csv_cached(file, options, dir / "cache"); }) == expected);
  for (std::size_t i = 0; i < streamed.size(); ++i) {
    CsvStream stream(file, options, {}, std::size_t{1} << (4 * i));
    CHECK(error_of([&] { read_all(stream); }) == streamed[i]);
  }
}

TEST_CASE("compression is found by magic bytes, never by the file name", "[csv][compressed]") {
  TempDir dir;
  const std::string text = "x,y\n1,2\n3,4\n";
  write_text(dir / "plain.csv", text);
  const Dataset plain = read_csv(dir / "plain.csv");
  SECTION("a file named .csv holding gzip is decompressed") {
    write_bytes(dir / "data.csv", gzip(text));
    require_same(read_csv(dir / "data.csv"), plain);
  }
  SECTION("a file named .zst holding zstd is decompressed") {
    write_bytes(dir / "data.zst", zstd(text));
    require_same(read_csv(dir / "data.zst"), plain);
  }
  SECTION("a plain file named .gz is read as plain") {
    write_text(dir / "data.csv.gz", text);
    require_same(read_csv(dir / "data.csv.gz"), plain);
    CsvStream stream(dir / "data.csv.gz", {});
    require_same(read_all(stream), plain);
  }
}

TEST_CASE("a truncated compressed file is an error that says so", "[csv][compressed]") {
  TempDir dir;
  const std::string text = labelled_csv(20000);
  const std::filesystem::path file = dir / "cut.csv.gz";
  SECTION("gzip") {
    std::vector<char> bytes = gzip(text, 2);
    bytes.resize(bytes.size() * 3 / 4);  // inside the second member
    write_bytes(file, bytes);
    const std::string expected = file.string() + ": gzip data ends early: the file is truncated";
    CHECK(error_of([&] { read_csv(file); }) == expected);
    CsvOptions options;
    options.target_kind = TargetKind::classes;
    CHECK(error_of([&] { collect_class_names(file, options); }) == expected);
  }
  SECTION("gzip cut inside its header") {
    write_bytes(file, std::vector<char>{'\x1f', '\x8b', '\x08'});
    CHECK(error_of([&] { read_csv(file); }) ==
          file.string() + ": gzip data ends early: the file is truncated");
  }
  SECTION("zstd") {
    std::vector<char> bytes = zstd(text);
    bytes.resize(bytes.size() / 2);
    write_bytes(file, bytes);
    const std::string expected = file.string() + ": zstd data ends early: the file is truncated";
    CHECK(error_of([&] { read_csv(file); }) == expected);
    CsvStream stream(file, {}, {}, 4096);
    CHECK(error_of([&] { read_all(stream); }) == expected);
  }
}

TEST_CASE("corrupt compressed data is an error naming the file and the compressed offset",
          "[csv][compressed]") {
  TempDir dir;
  const std::string text = labelled_csv(20000);
  const std::filesystem::path file = dir / "bad.csv";
  SECTION("gzip: a changed byte fails the CRC-32 or the deflate stream") {
    std::vector<char> bytes = gzip(text);
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x55);
    write_bytes(file, bytes);
    const std::string error = error_of([&] { read_csv(file); });
    CHECK_THAT(error, StartsWith(file.string() + ": corrupt gzip data at compressed byte "));
  }
  SECTION("gzip: bytes after the last member that are not another member") {
    std::vector<char> bytes = gzip(text);
    const std::size_t size = bytes.size();
    bytes.insert(bytes.end(), {'j', 'u', 'n', 'k'});
    write_bytes(file, bytes);
    CHECK(error_of([&] { read_csv(file); }) ==
          file.string() + ": corrupt gzip data at compressed byte " + std::to_string(size) +
              ": bytes after the last member that are not another gzip member");
  }
  SECTION("zstd: a damaged frame header") {
    std::vector<char> bytes = zstd(text);
    bytes[4] = static_cast<char>(0xff);  // reserved bits of the frame header descriptor
    write_bytes(file, bytes);
    CHECK_THAT(error_of([&] { read_csv(file); }),
               StartsWith(file.string() + ": corrupt zstd data at compressed byte "));
  }
}

TEST_CASE("parts of compressed data are refused: they have no byte offsets", "[csv][compressed]") {
  TempDir dir;
  const std::string text = "x,y\n1,2\n3,4\n";
  write_bytes(dir / "data.csv.gz", gzip(text));
  write_bytes(dir / "data.zst", zstd(text));
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  const std::string gz = (dir / "data.csv.gz").string();
  const std::string zst = (dir / "data.zst").string();
  CHECK(error_of([&] { detail::read_csv_part(gz, options, 1, 2, {}); }) ==
        gz +
            " is gzip-compressed: ranks read their parts by byte offsets, which compressed data "
            "does not have; decompress it first, e.g. zcat " +
            gz + " > data.csv");
  CHECK(error_of([&] { detail::open_csv_stream_part(zst, options, {}, 4096, 0, 3, {}); }) ==
        zst +
            " is zstd-compressed: ranks read their parts by byte offsets, which compressed data "
            "does not have; decompress it first, e.g. zstdcat " +
            zst + " > data.csv");
  CHECK(error_of([&] { detail::scan_csv_part(gz, options, 0, 2); }) ==
        error_of([&] { detail::check_csv_part(gz, options, 1, 2); }));
  CHECK_THAT(error_of([&] { detail::read_csv_part("-", options, 0, 2, {}); }),
             StartsWith("<stdin> is standard input: ranks read their parts by byte offsets"));
}

TEST_CASE("standard input is read once, named <stdin>", "[csv][compressed]") {
  const std::string text = "x,y\n1,2\n3,4\noops,5\n";
  const bool compressed = GENERATE(false, true);
  CAPTURE(compressed);
  const std::vector<char> bytes = compressed ? gzip(text) : bytes_of(text);
  SECTION("read_csv and read_csv_cached (not cached) name it in messages") {
    {
      const StandardInputFrom input(bytes);
      CHECK_THAT(error_of([] { read_csv("-"); }),
                 StartsWith("<stdin>:4:1 (column 1 'x'): ") && Contains("'oops'"));
    }
    const StandardInputFrom input(bytes_of("x,y\n1,2\n"));
    const TempDir dir;
    CHECK(read_csv_cached("-", {}, dir.path()).rows == 1);
    CHECK(directory_entries(dir.path()).empty());
  }
  SECTION("a stream reads it once, and refuses a second pass") {
    const StandardInputFrom input(compressed ? gzip("x,y\n1,2\n3,4\n")
                                             : bytes_of("x,y\n1,2\n3,4\n"));
    CsvStream stream("-", {}, {}, 4);
    stream.rewind();  // nothing read yet: nothing to do
    CHECK(read_all(stream).rows == 2);
    CHECK_THAT(error_of([&] { stream.rewind(); }),
               StartsWith("<stdin>: standard input cannot be read twice; write it to a file "
                          "first"));
  }
}

TEST_CASE("train and predict read --data - from a pipe as they read the file",
          "[cli][compressed]") {
  TempDir dir;
  const std::string train = separable_csv(21, 300);
  const std::string test = separable_csv(22, 120);
  write_text(dir / "train.csv", train);
  write_text(dir / "test.csv", test);
  write_bytes(dir / "train.csv.gz", gzip(train, 2));
  write_bytes(dir / "test.zst", zstd(test));
  const Args options{"--layers", "6", "--epochs", "3", "--batch-size", "16", "--seed", "3"};
  auto train_from = [&](const std::string& data, const std::string& out, const char* pipe) {
    Args args{"train", "--data", data, "--out", out};
    args.insert(args.end(), options.begin(), options.end());
    return pipe == nullptr ? run_cli(dir, args) : run_cli_from_pipe(dir, pipe, args);
  };
  const Run from_file = train_from("train.csv", "file.st", nullptr);
  INFO(from_file.err);
  REQUIRE(from_file.exit_code == 0);
  const char* source = GENERATE("cat train.csv", "cat train.csv.gz");
  CAPTURE(source);
  const Run from_pipe = train_from("-", "pipe.st", source);
  INFO(from_pipe.err);
  REQUIRE(from_pipe.exit_code == 0);

  // The same weights predict the same values, from the file and from a pipe.
  REQUIRE(run_cli(dir, {"predict", "--model", "file.st", "--data", "test.csv", "--output",
                        "file.out", "--probabilities"})
              .exit_code == 0);
  const Run predicted = run_cli_from_pipe(
      dir, "cat test.zst",
      {"predict", "--model", "pipe.st", "--data", "-", "--output", "pipe.out", "--probabilities"});
  INFO(predicted.err);
  REQUIRE(predicted.exit_code == 0);
  CHECK(read_text(dir / "pipe.out") == read_text(dir / "file.out"));

  SECTION("evaluate reads a pipe too") {
    const Run evaluated =
        run_cli_from_pipe(dir, "cat test.csv", {"evaluate", "--model", "pipe.st", "--data", "-"});
    INFO(evaluated.err);
    CHECK(evaluated.exit_code == 0);
    CHECK_THAT(evaluated.out, StartsWith("-: 120 rows"));
  }
  SECTION("a resumed run from standard input asks for the data again") {
    const Run resumed = run_cli(dir, {"train", "--resume", "pipe.st", "--epochs", "4"});
    CHECK(resumed.exit_code == 1);
    CHECK_THAT(resumed.err, Contains("pipe.st was trained on standard input (--data -), which a "
                                     "checkpoint cannot read again: give the data with --data"));
  }
  SECTION("--cache with standard input is a usage error") {
    Args args{"train", "--data", "-", "--cache", "--out", "c.st"};
    args.insert(args.end(), options.begin(), options.end());
    const Run cached = run_cli_from_pipe(dir, "cat train.csv", args);
    CHECK(cached.exit_code == 2);
    CHECK_THAT(cached.err, Contains("--cache keeps a parsed copy"));
  }
}

TEST_CASE("a compressed file's text size is estimated from what it records", "[csv][compressed]") {
  TempDir dir;
  const std::string text = labelled_csv(20000);  // compresses by more than three
  write_text(dir / "plain.csv", text);
  CHECK(estimated_csv_bytes(dir / "plain.csv") == text.size());
  SECTION("gzip: the last member's length, or three times the file") {
    const std::vector<char> one = gzip(text);
    REQUIRE(one.size() * 3 < text.size());
    write_bytes(dir / "one.gz", one);
    CHECK(estimated_csv_bytes(dir / "one.gz") == text.size());
    // Two members record only the second half's length: three times the file is larger.
    const std::vector<char> two = gzip(text, 2);
    write_bytes(dir / "two.gz", two);
    const std::uint64_t second_half = text.size() - text.size() / 2;
    CHECK(estimated_csv_bytes(dir / "two.gz") ==
          std::max<std::uint64_t>(second_half, 3 * two.size()));
  }
  SECTION("zstd: the first frame's content size, or three times the file") {
    const std::vector<char> frame = zstd(text);
    write_bytes(dir / "one.zst", frame);
    CHECK(estimated_csv_bytes(dir / "one.zst") == text.size());
    const std::vector<char> frames = zstd(text, 4);
    write_bytes(dir / "four.zst", frames);
    CHECK(estimated_csv_bytes(dir / "four.zst") ==
          std::max<std::uint64_t>(text.size() - text.size() * 3 / 4, 3 * frames.size()));
  }
  SECTION("standard input has no size to tell; a missing file is an error") {
    CHECK(estimated_csv_bytes("-") == 0);
    CHECK_THROWS_WITH(estimated_csv_bytes(dir / "none.csv"),
                      StartsWith((dir / "none.csv").string() + ": cannot read: "));
  }
}

TEST_CASE("train streams a compressed file by the size of its text", "[cli][compressed]") {
  TempDir dir;
  const std::string train = separable_csv(21, 3000);
  const std::vector<char> packed = gzip(train);
  write_bytes(dir / "train.csv.gz", packed);
  // A threshold between the compressed size and the text's.
  const double between_mb = static_cast<double>(packed.size() + train.size()) / 2.0 / (1 << 20);
  REQUIRE(static_cast<double>(packed.size()) / (1 << 20) < between_mb);
  const Run run = run_cli(dir, {"train", "--data", "train.csv.gz", "--layers", "4", "--epochs", "1",
                                "--stream-above-mb", std::to_string(between_mb)});
  INFO(run.err);
  CHECK(run.exit_code == 0);
  CHECK_THAT(run.out, Contains("streamed"));
}
