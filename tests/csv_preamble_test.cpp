// CsvOptions::skip_rows and CsvOptions::comment: a file with skipped lines before the header and
// comment lines anywhere reads, through every reader (read_csv, the cache, CsvStream, parts),
// bit for bit as the same file with those lines deleted; messages count the deleted lines.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "data/csv_cache.hpp"
#include "data/csv_chunks.hpp"
#include "data/csv_labels.hpp"
#include "data/csv_part.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using shardprop::CsvOptions;
using shardprop::CsvStream;
using shardprop::Dataset;
using shardprop::Error;
using shardprop::read_csv;
using shardprop::TargetKind;
using shardprop::detail::CsvPartScan;
using shardprop::test::TempDir;
using shardprop::test::write_text;

using Path = std::filesystem::path;
using Names = std::vector<std::string>;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void check_same(const Dataset& got, const Dataset& expected) {
  CHECK(got.rows == expected.rows);
  CHECK(got.feature_count == expected.feature_count);
  CHECK(got.target_width == expected.target_width);
  CHECK(got.feature_names == expected.feature_names);
  CHECK(got.target_names == expected.target_names);
  CHECK(got.class_names == expected.class_names);
  CHECK(same_bits(got.features, expected.features));
  CHECK(same_bits(got.targets, expected.targets));
}

std::string message_of(const std::function<void()>& work) {
  try {
    work();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

// A file and the same file with its preamble and comment lines deleted. Records hold numbers,
// quoted numbers, quoted fields across lines (one of whose lines starts with '#': data), and a
// class label; comment lines hold delimiters and paired quotes.
struct Files {
  std::string with;
  std::string without;
};

Files make_files(std::uint32_t seed, int rows, std::int64_t skip_rows, bool header) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> digit(0, 999);
  std::uniform_int_distribution<int> percent(0, 99);
  Files files;
  const char* junk[] = {"junk line, with \"an odd quote\n", "13,4,\"\n", "\n", "a,b,c\n"};
  for (std::int64_t i = 0; i < skip_rows; ++i) files.with += junk[i % 4];
  auto comment = [&](std::string& text) {
    const int kind = percent(random) % 3;
    text += kind == 0 ? "#\n" : kind == 1 ? "# a, b, \"quoted\" c\n" : "#1,2,3,4\n";
  };
  files.with += "# leading comment\n";
  if (header) {
    files.with += "x,note,y,label\n";
    files.without += "x,note,y,label\n";
  }
  for (int r = 0; r < rows; ++r) {
    while (percent(random) < 15) comment(files.with);
    std::string record = std::to_string(digit(random)) + ".5,";
    const int kind = percent(random) % 4;
    if (kind == 0) record += "\"multi\n#line\"";
    if (kind == 1) record += "\"q,\"\"x\"\"\"";
    if (kind == 2) record += "plain";
    record += ",\"" + std::to_string(digit(random)) + "\",";
    record += percent(random) < 50 ? "cat" : "dog";
    record += r + 1 < rows || percent(random) < 50 ? "\n" : "";
    files.with += record;
    files.without += record;
  }
  if (!files.with.ends_with('\n')) files.with += "\n";
  // Blank lines among the trailing comment lines are trailing blank lines too.
  const char* blank[] = {"", "\n", " \r\n", "\n\n"};
  files.with += blank[percent(random) % 4];
  if (percent(random) < 50) comment(files.with);
  files.with += blank[percent(random) % 4];
  files.with += "# trailing comment\n";
  files.with += blank[percent(random) % 4];
  return files;
}

// Each part's `before`: the sum of the scans of the parts before it.
std::vector<CsvPartScan> scans_before(const Path& path, const CsvOptions& options, int parts) {
  std::vector<CsvPartScan> before(static_cast<std::size_t>(parts));
  CsvPartScan sum;
  for (int p = 0; p < parts; ++p) {
    before[static_cast<std::size_t>(p)] = sum;
    const CsvPartScan scan = shardprop::detail::scan_csv_part(path, options, p, parts);
    sum.quotes += scan.quotes;
    sum.newlines += scan.newlines;
  }
  return before;
}

void append_rows(std::optional<Dataset>& all, const Dataset& more) {
  if (!all) {
    all = more;
    return;
  }
  all->rows += more.rows;
  all->features.insert(all->features.end(), more.features.begin(), more.features.end());
  all->targets.insert(all->targets.end(), more.targets.begin(), more.targets.end());
}

Names merged(std::vector<Names> parts) {
  Names names;
  for (const Names& part : parts) names.insert(names.end(), part.begin(), part.end());
  shardprop::detail::sort_class_labels(names);
  return names;
}

// The parts' rows put together, class labels merged as a caller would, and the first row of
// each part.
Dataset read_in_parts(const Path& path, const CsvOptions& options, int parts,
                      std::vector<std::int64_t>& first_rows) {
  const std::vector<CsvPartScan> before = scans_before(path, options, parts);
  std::vector<shardprop::detail::CsvPart> read;
  std::vector<Names> names;
  for (int p = 0; p < parts; ++p) {
    read.push_back(shardprop::detail::read_csv_part(path, options, p, parts,
                                                    before[static_cast<std::size_t>(p)]));
    names.push_back(read.back().data.class_names);
  }
  const Names all_names = merged(names);
  std::optional<Dataset> all;
  first_rows.clear();
  for (auto& part : read) {
    first_rows.push_back(all ? all->rows : 0);
    if (options.target_kind == TargetKind::classes && part.data.rows > 0) {
      use_class_names(part.data, all_names);
    }
    append_rows(all, part.data);
  }
  all->class_names = all_names;
  return *all;
}

Dataset stream_all(CsvStream& stream) {
  std::optional<Dataset> all;
  Dataset chunk;
  while (stream.next(chunk)) {
    REQUIRE(chunk.rows > 0);
    append_rows(all, chunk);
  }
  if (!all) all = Dataset{};
  return *all;
}

Dataset stream_in_parts(const Path& path, const CsvOptions& options, int parts,
                        std::size_t block_bytes, const Names& class_names) {
  const std::vector<CsvPartScan> before = scans_before(path, options, parts);
  std::vector<Names> each;
  for (int p = 0; p < parts; ++p) {
    each.push_back(shardprop::detail::collect_class_names_part(
        path, options, p, parts, before[static_cast<std::size_t>(p)]));
  }
  CHECK(merged(each) == class_names);
  std::optional<Dataset> all;
  for (int p = 0; p < parts; ++p) {
    const std::unique_ptr<CsvStream> stream = shardprop::detail::open_csv_stream_part(
        path, options, class_names, block_bytes, p, parts, before[static_cast<std::size_t>(p)]);
    const Dataset rows = stream_all(*stream);
    if (rows.rows > 0) append_rows(all, rows);
  }
  all->class_names = class_names;
  return *all;
}

}  // namespace

TEST_CASE("Skipped and comment lines read as the file without them", "[csv][preamble]") {
  const auto seed = GENERATE(1u, 2u, 3u);
  const std::int64_t skip_rows = GENERATE(0, 1, 4);
  const bool header = GENERATE(true, false);
  CAPTURE(seed, skip_rows, header);
  const Files files = make_files(seed, 60, skip_rows, header);
  TempDir dir;
  write_text(dir / "with.csv", files.with);
  write_text(dir / "without.csv", files.without);
  CsvOptions plain;
  plain.header = header;
  plain.target_kind = TargetKind::classes;
  plain.ignore = {"1"};
  CsvOptions options = plain;
  options.skip_rows = skip_rows;
  options.comment = '#';
  const Dataset expected = read_csv(dir / "without.csv", plain);
  REQUIRE(expected.rows == 60);
  REQUIRE(expected.class_names == Names{"cat", "dog"});

  SECTION("read_csv at every chunk size") {
    for (const std::size_t chunk_bytes :
         {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{4} << 20}) {
      CAPTURE(chunk_bytes);
      options.chunk_bytes = chunk_bytes;
      check_same(read_csv(dir / "with.csv", options), expected);
    }
  }
  SECTION("read_csv_cached, and the key tells the options apart") {
    check_same(shardprop::read_csv_cached(dir / "with.csv", options, dir.path()), expected);
    check_same(shardprop::read_csv_cached(dir / "with.csv", options, dir.path()), expected);
    const Path cache = shardprop::detail::csv_cache_path(dir / "with.csv", options);
    CsvOptions other = options;
    other.comment = ';';
    CHECK(shardprop::detail::csv_cache_path(dir / "with.csv", other) != cache);
    other = options;
    other.skip_rows = skip_rows + 1;
    CHECK(shardprop::detail::csv_cache_path(dir / "with.csv", other) != cache);
  }
  SECTION("CsvStream and collect_class_names at several block and chunk sizes") {
    CHECK(shardprop::collect_class_names(dir / "with.csv", options) == expected.class_names);
    for (const std::size_t block :
         {std::size_t{1}, std::size_t{16}, std::size_t{100}, std::size_t{1} << 20}) {
      for (const std::size_t chunk_bytes : {std::size_t{3}, std::size_t{4} << 20}) {
        CAPTURE(block, chunk_bytes);
        options.chunk_bytes = chunk_bytes;
        CsvStream stream(dir / "with.csv", options, expected.class_names, block);
        Dataset all = stream_all(stream);
        all.class_names = expected.class_names;
        check_same(all, expected);
        stream.rewind();
        CHECK(stream_all(stream).rows == expected.rows);
      }
    }
  }
  SECTION("parts: the rows, and each part's first row, as without the lines") {
    for (int parts = 1; parts <= 3; ++parts) {
      CAPTURE(parts);
      std::vector<std::int64_t> first_with, first_without;
      check_same(read_in_parts(dir / "with.csv", options, parts, first_with), expected);
      for (const std::size_t block : {std::size_t{5}, std::size_t{1} << 20}) {
        check_same(stream_in_parts(dir / "with.csv", options, parts, block, expected.class_names),
                   expected);
      }
      const Dataset again = read_in_parts(dir / "with.csv", options, parts, first_with);
      check_same(again, expected);
    }
  }
}

TEST_CASE("The chunk cutter counts no comment line as a record", "[csv][preamble]") {
  const std::string text = "#c\n1,2\n#d,\"\"\n3,4\n#\n5,6\n#e\n";
  for (std::size_t chunk_bytes = 1; chunk_bytes <= text.size(); ++chunk_bytes) {
    CAPTURE(chunk_bytes);
    const auto chunks = shardprop::detail::split_csv_chunks(text, chunk_bytes, '#');
    std::int64_t rows = 0;
    for (const auto& chunk : chunks) {
      CHECK(chunk.first_row == rows);
      rows += chunk.rows;
    }
    CHECK(rows == 3);
    CHECK(shardprop::detail::split_csv_chunks(text, chunk_bytes).back().first_row +
              shardprop::detail::split_csv_chunks(text, chunk_bytes).back().rows ==
          7);
  }
}

TEST_CASE("Messages count skipped and comment lines", "[csv][preamble]") {
  TempDir dir;
  const Path path = dir / "data.csv";
  CsvOptions options;
  options.skip_rows = 2;
  options.comment = '#';
  const std::string file = path.string();

  SECTION("a bad value after comment lines, read whole, streamed and in parts") {
    options.target_kind = TargetKind::numeric;
    write_text(path, "counts 3 2\nmore \"junk\n#c\nx,y\n1,2\n#c\n\n#c\n3,oops\n4,5\n");
    // Line 9: two skipped lines, a comment, the header, a record, 3 lines, then the bad one.
    const std::string wanted = file + ":9:3 (column 2 'y'): 'oops' is not a number";
    for (const std::size_t chunk_bytes : {std::size_t{1}, std::size_t{4} << 20}) {
      options.chunk_bytes = chunk_bytes;
      CHECK_THAT(message_of([&] { read_csv(path, options); }),
                 Equals(file + ":7: blank line inside the data"));
    }
    write_text(path, "counts 3 2\nmore \"junk\n#c\nx,y\n1,2\n#c\n#c\n#c\n3,oops\n4,5\n");
    for (const std::size_t chunk_bytes : {std::size_t{1}, std::size_t{4} << 20}) {
      options.chunk_bytes = chunk_bytes;
      CHECK_THAT(message_of([&] { read_csv(path, options); }), Equals(wanted));
      for (const std::size_t block : {std::size_t{1}, std::size_t{1} << 20}) {
        CHECK_THAT(message_of([&] {
                     CsvStream stream(path, options, {}, block);
                     stream_all(stream);
                   }),
                   Equals(wanted));
      }
    }
    for (int parts = 1; parts <= 3; ++parts) {
      std::vector<std::int64_t> first_rows;
      CHECK_THAT(message_of([&] { read_in_parts(path, options, parts, first_rows); }),
                 Equals(wanted));
    }
  }
  SECTION("a bad header names its line") {
    write_text(path, "a\nb\n#c\nx\n1\n");
    CHECK_THAT(message_of([&] { read_csv(path, options); }),
               Equals(file + ":4: the header has 1 column; at least one feature and one target "
                             "are needed"));
  }
  SECTION("a comment line with an unbalanced quote") {
    const std::string before_header = "a\nb\n#c \"\nx,y\n1,2\n";
    const std::string between = "a\nb\nx,y\n1,2\n#c \"\n3,4\n\"5\",6\n";
    write_text(path, before_header);
    CHECK_THAT(message_of([&] { read_csv(path, options); }),
               Equals(file + ":3: comment line holds an unbalanced quote (an odd number of '\"'), "
                             "which would hide where later records start; remove it or pair it"));
    write_text(path, between);
    for (const std::size_t chunk_bytes : {std::size_t{1}, std::size_t{4} << 20}) {
      options.chunk_bytes = chunk_bytes;
      CHECK_THAT(message_of([&] { read_csv(path, options); }),
                 Contains(file + ":5: comment line holds an unbalanced quote"));
      CHECK_THAT(message_of([&] {
                   CsvStream stream(path, options, {}, 4);
                   stream_all(stream);
                 }),
                 Contains(file + ":5: comment line holds an unbalanced quote"));
    }
  }
  SECTION("a quoted field's line that starts with the comment character is data") {
    write_text(path, "a\nb\nx,y\n\"1\n#2\",3\n");
    options.target_kind = TargetKind::numeric;
    CHECK_THAT(message_of([&] { read_csv(path, options); }),
               Equals(file + ":4:1 (column 1 'x'): '1\\n#2' is not a number; if column 'x' holds "
                             "categories, one-hot encode it with --categorical x"));
  }
}

TEST_CASE("Bad skip_rows and comment options are refused", "[csv][preamble]") {
  TempDir dir;
  const Path path = dir / "data.csv";
  const std::string file = path.string();
  write_text(path, "one\ntwo\nx,y\n1,2\n");
  CsvOptions options;

  SECTION("fewer lines than skip_rows") {
    options.skip_rows = 9;
    CHECK_THAT(message_of([&] { read_csv(path, options); }),
               Equals(file + ": skip_rows is 9 but the file has only 4 lines"));
    CHECK_THAT(message_of([&] {
                 CsvStream stream(path, options, {}, 2);
                 stream_all(stream);
               }),
               Equals(file + ": skip_rows is 9 but the file has only 4 lines"));
  }
  SECTION("every line skipped") {
    options.skip_rows = 4;
    CHECK_THAT(message_of([&] { read_csv(path, options); }),
               Contains(file + ": nothing but blank lines after the first 4 lines"));
  }
  SECTION("negative skip_rows") {
    options.skip_rows = -1;
    CHECK_THAT(message_of([&] { read_csv(path, options); }),
               Contains(file + ": skip_rows is -1; it counts lines to skip"));
  }
  SECTION("a comment character that is the delimiter, a quote, CR or LF") {
    options.comment = GENERATE(',', '"', '\r', '\n');
    CHECK_THAT(message_of([&] { read_csv(path, options); }),
               Equals(file + ": the comment character cannot be the delimiter, a quote, CR or LF"));
    CHECK_THAT(message_of([&] { CsvStream stream(path, options); }),
               Equals(file + ": the comment character cannot be the delimiter, a quote, CR or LF"));
  }
  SECTION("skipping two lines reads the rest") {
    options.skip_rows = 2;
    const Dataset data = read_csv(path, options);
    CHECK(data.rows == 1);
    CHECK(data.feature_names == Names{"x"});
    CHECK(data.features == std::vector<float>{1.0f});
  }
}
