// A CSV file read in P parts, each from its own byte range: the parts' rows, put together, are
// read_csv's bit for bit for every P and chunk size; a bad record is reported by the part that
// owns it with read_csv's FILE:LINE:COLUMN; each part reads about 1/P of the file; and a part
// streams as it reads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "data/csv_chunks.hpp"
#include "data/csv_labels.hpp"
#include "data/csv_part.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::CsvOptions;
using shardprop::CsvStream;
using shardprop::Dataset;
using shardprop::read_csv;
using shardprop::TargetKind;
using shardprop::detail::CsvPart;
using shardprop::detail::CsvPartScan;
using shardprop::detail::read_csv_part;
using shardprop::test::TempDir;
using shardprop::test::write_text;

using Names = std::vector<std::string>;
using Path = std::filesystem::path;

// Each part's `before`: the sum of the scans of the parts before it (what an exclusive prefix
// sum across processes gives).
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

// Appends `more`'s rows to `all`; the first piece gives `all` its columns and names.
void append_rows(std::optional<Dataset>& all, const Dataset& more) {
  if (!all) {
    all = more;
    return;
  }
  all->rows += more.rows;
  all->features.insert(all->features.end(), more.features.begin(), more.features.end());
  all->targets.insert(all->targets.end(), more.targets.begin(), more.targets.end());
}

// The union of the parts' class names in class order.
Names merged_class_names(const std::vector<Names>& parts) {
  Names names;
  for (const Names& part : parts) names.insert(names.end(), part.begin(), part.end());
  shardprop::detail::sort_class_labels(names);
  return names;
}

// All parts read with read_csv_part and put together as a caller would: class labels merged,
// then each part's targets re-indexed to the merged names.
Dataset read_in_parts(const Path& path, const CsvOptions& options, int parts) {
  const std::vector<CsvPartScan> before = scans_before(path, options, parts);
  std::vector<CsvPart> read;
  std::vector<Names> class_names;
  for (int p = 0; p < parts; ++p) {
    read.push_back(read_csv_part(path, options, p, parts, before[static_cast<std::size_t>(p)]));
    class_names.push_back(read.back().data.class_names);
  }
  const Names merged = merged_class_names(class_names);
  std::optional<Dataset> all;
  for (CsvPart& part : read) {
    // An empty part has no labels to re-index.
    if (options.target_kind == TargetKind::classes && part.data.rows > 0) {
      use_class_names(part.data, merged);
    }
    append_rows(all, part.data);
  }
  all->class_names = merged;
  return *all;
}

// All parts streamed, in blocks of block_bytes, with the merged class names of the parts.
Dataset stream_in_parts(const Path& path, const CsvOptions& options, int parts,
                        std::size_t block_bytes) {
  const std::vector<CsvPartScan> before = scans_before(path, options, parts);
  Names class_names;
  if (options.target_kind == TargetKind::classes) {
    std::vector<Names> each;
    for (int p = 0; p < parts; ++p) {
      each.push_back(shardprop::detail::collect_class_names_part(
          path, options, p, parts, before[static_cast<std::size_t>(p)]));
    }
    class_names = merged_class_names(each);
  }
  std::optional<Dataset> all;
  for (int p = 0; p < parts; ++p) {
    const std::unique_ptr<CsvStream> stream = shardprop::detail::open_csv_stream_part(
        path, options, class_names, block_bytes, p, parts, before[static_cast<std::size_t>(p)]);
    std::optional<Dataset> once;
    for (int pass = 0; pass < 2; ++pass) {  // the second pass after a rewind
      std::optional<Dataset> rows;
      stream->rewind();
      Dataset chunk;
      while (stream->next(chunk)) {
        REQUIRE(chunk.rows > 0);
        append_rows(rows, chunk);
      }
      if (pass == 1 && once && rows) CHECK(rows->features == once->features);
      if (pass == 1) CHECK(rows.has_value() == once.has_value());
      once = rows;
    }
    if (once) append_rows(all, *once);
  }
  if (!all) all = Dataset{};
  all->class_names = class_names;
  return *all;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  // memcmp may not be given the null data() of an empty vector, even for 0 bytes.
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void require_same(const Dataset& a, const Dataset& b) {
  REQUIRE(a.rows == b.rows);
  CHECK(a.feature_count == b.feature_count);
  CHECK(a.target_width == b.target_width);
  CHECK(a.feature_names == b.feature_names);
  CHECK(a.target_names == b.target_names);
  CHECK(a.class_names == b.class_names);
  CHECK(same_bits(a.features, b.features));
  CHECK(same_bits(a.targets, b.targets));
}

// The message of the Error f() throws, or "(no error)".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const shardprop::Error& e) {
    return e.what();
  }
  return "(no error)";
}

enum class Labels { numbers, words, numeric_words };

struct FileShape {
  bool header = true;
  bool byte_order_mark = false;
  bool crlf = false;
  int trailing_blank_lines = 0;
};

std::string shortest(float value) {
  char text[32];
  const auto result = std::to_chars(text, text + sizeof text, value);
  return {text, result.ptr};
}

// Columns x0, note, x1, label. Notes are often quoted with delimiters, doubled quotes and line
// breaks inside; x1 is sometimes a quoted number. Labels are numbers, words (some quoted with a
// delimiter or quotes inside) or numbers read as words ("2" before "10").
std::string generated_csv(int records, const FileShape& shape, Labels labels, std::uint64_t seed) {
  static const char* const kWords[] = {"cat", "dog", "\"a,b\"", "\"say \"\"hi\"\"\"", "bird"};
  static const char* const kNumericWords[] = {"2", "10", "1", "1.0", "-3", "\"7\""};
  const std::string eol = shape.crlf ? "\r\n" : "\n";
  std::mt19937_64 bits(seed);
  std::string text = shape.byte_order_mark ? "\xEF\xBB\xBF" : "";
  if (shape.header) text += "x0,note,x1,label" + eol;
  for (int r = 0; r < records; ++r) {
    text += shortest(shardprop::test::uniform_pm1(bits) * 100.0f) + ",";
    switch (bits() % 4) {
      case 0:
        text += 'n';
        text += std::to_string(r);
        break;
      case 1:
        text += "\"line one" + eol + "line \"\"two\"\", with a comma\"";
        break;
      case 2:
        text += "\"\"";
        break;
      default:
        text += "\"" + eol + eol + "\"";
        break;
    }
    const std::string x1 = shortest(shardprop::test::uniform_pm1(bits));
    text += "," + (bits() % 3 == 0 ? "\"" + x1 + "\"" : x1) + ",";
    if (labels == Labels::numbers) {
      text += shortest(shardprop::test::uniform_pm1(bits) * 1e3f);
    } else if (labels == Labels::words) {
      text += kWords[bits() % 5];
    } else {
      text += kNumericWords[bits() % 6];
    }
    text += eol;
  }
  for (int b = 0; b < shape.trailing_blank_lines; ++b) text += (b % 2 == 0 ? "  " : "") + eol;
  return text;
}

CsvOptions label_options(Labels labels, bool header) {
  CsvOptions options;
  options.header = header;
  options.ignore = {header ? "note" : "1"};
  options.target_kind = labels == Labels::words ? TargetKind::classes : TargetKind::numeric;
  return options;
}

}  // namespace

TEST_CASE("parts put together are read_csv's rows for every part count and chunk size",
          "[csv][parts]") {
  const bool header = GENERATE(true, false);
  const int flavour = GENERATE(0, 1, 2, 3);
  const FileShape shape{header, (flavour & 1) != 0, (flavour & 2) != 0, flavour};
  const Labels labels = GENERATE(Labels::numbers, Labels::words, Labels::numeric_words);
  const int records = GENERATE(0, 1, 3, 40, 300);
  const std::size_t chunk =
      GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{4096}, CsvOptions{}.chunk_bytes);
  if (records == 0 && !header) return;  // an empty file, an error
  CAPTURE(header, flavour, labels, records, chunk);

  const TempDir dir;
  const Path path = dir / "data.csv";
  write_text(path, generated_csv(records, shape, labels, 17 + records));
  CsvOptions options = label_options(labels, header);
  options.chunk_bytes = chunk;
  const Dataset whole = read_csv(path, options);
  REQUIRE(whole.rows == records);
  for (int parts = 1; parts <= 7; ++parts) {
    CAPTURE(parts);
    require_same(read_in_parts(path, options, parts), whole);
  }

  SECTION("numbers read as class labels sort by value, as in the whole file") {
    if (labels != Labels::numeric_words) return;
    options.target_kind = TargetKind::classes;
    const Dataset classes = read_csv(path, options);
    for (int parts = 1; parts <= 7; ++parts) {
      CAPTURE(parts);
      require_same(read_in_parts(path, options, parts), classes);
    }
  }
}

TEST_CASE("parts follow read_csv's column options", "[csv][parts]") {
  const TempDir dir;
  const Path path = dir / "data.csv";
  std::string text = generated_csv(50, FileShape{}, Labels::numbers, 5);
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  SECTION("a feature list in its own order") { options.features = {"x1", "x0"}; }
  SECTION("several targets") {
    options.targets = {"label", "x0"};
    options.ignore = {"note"};
  }
  SECTION("no target") {
    options.no_target = true;
    options.ignore = {"note"};
    options.target_kind = TargetKind::automatic;
  }
  SECTION("non-finite features when allowed") {
    options.allow_non_finite = true;
    options.ignore = {"note"};
    text += "nan,n,inf,1\n-inf,n,2,3\n";
  }
  SECTION("no header, the target by index") {
    text = text.substr(text.find('\n') + 1);
    options.header = false;
    options.targets = {"0"};
    options.ignore = {"1"};
  }
  write_text(path, text);
  const Dataset whole = read_csv(path, options);
  for (int parts = 1; parts <= 7; ++parts) {
    CAPTURE(parts);
    require_same(read_in_parts(path, options, parts), whole);
  }
}

TEST_CASE("merged class names sort as read_csv sorts them", "[csv][parts]") {
  Names names = {"10", "2", "1.0", "2", "1", "-3"};
  shardprop::detail::sort_class_labels(names);
  CHECK(names == Names{"-3", "1", "1.0", "2", "10"});
  names = {"dog", "10", "cat", "dog"};
  shardprop::detail::sort_class_labels(names);
  CHECK(names == Names{"10", "cat", "dog"});
}

TEST_CASE("a bad record is reported by the part that owns it, as read_csv reports it",
          "[csv][parts]") {
  // Record 30 of 60, after records with line breaks inside quotes.
  const std::string good = generated_csv(60, FileShape{}, Labels::numbers, 3);
  std::size_t at = 0;
  for (int line = 0; line < 31; ++line) {
    at = shardprop::detail::next_record_start(good, at, good.size(), false);
  }
  // A bad value, a short record, a blank line, text after a closing quote, and a stray quote
  // (which flips the quote parity of everything after it).
  const auto [bad, misleads_parity] =
      GENERATE(table<std::string, bool>({{"1,n,abc,2\n", false},
                                         {"1,n,2\n", false},
                                         {"\n", false},
                                         {"1,\"x\ny\",\"2\"3,4\n", false},
                                         {"1,n,a\"b,2\n", true}}));
  const bool quoting = misleads_parity;
  CAPTURE(bad);
  const TempDir dir;
  const Path path = dir / "data.csv";
  write_text(path, good.substr(0, at) + bad + good.substr(at));
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  options.ignore = {"note"};
  options.chunk_bytes = GENERATE(std::size_t{1}, std::size_t{4096});
  const std::string expected = error_of([&] { read_csv(path, options); });
  REQUIRE_THAT(expected, Contains(":"));
  REQUIRE(expected != "(no error)");

  for (int parts = 1; parts <= 7; ++parts) {
    CAPTURE(parts);
    const std::vector<CsvPartScan> before = scans_before(path, options, parts);
    std::vector<std::string> errors;
    for (int p = 0; p < parts; ++p) {
      errors.push_back(error_of(
          [&] { read_csv_part(path, options, p, parts, before[static_cast<std::size_t>(p)]); }));
    }
    // Malformed quoting misleads the parts after it; the first part that fails is right.
    const auto first_failed = std::find_if(errors.begin(), errors.end(),
                                           [](const std::string& e) { return e != "(no error)"; });
    REQUIRE(first_failed != errors.end());
    CHECK(*first_failed == expected);
    if (!quoting) CHECK(std::count(errors.begin(), errors.end(), "(no error)") == parts - 1);

    for (const std::size_t block : {std::size_t{5}, std::size_t{4096}}) {
      CAPTURE(block);
      std::vector<std::string> streamed;
      for (int p = 0; p < parts; ++p) {
        streamed.push_back(error_of([&] {
          const std::unique_ptr<CsvStream> stream = shardprop::detail::open_csv_stream_part(
              path, options, {}, block, p, parts, before[static_cast<std::size_t>(p)]);
          Dataset chunk;
          while (stream->next(chunk)) {
          }
        }));
      }
      if (quoting) {
        CHECK(*std::find_if(streamed.begin(), streamed.end(),
                            [](const std::string& e) { return e != "(no error)"; }) == expected);
      } else {
        CHECK(streamed == errors);
      }
    }
  }
}

TEST_CASE("each part reads about its share of the file, not all of it", "[csv][parts]") {
  const TempDir dir;
  const Path path = dir / "data.csv";
  const std::string text = generated_csv(25000, FileShape{}, Labels::numbers, 11);
  REQUIRE(text.size() > 1000000);
  write_text(path, text);
  std::size_t longest = 0;
  for (std::size_t at = 0, next = 0; at < text.size(); at = next) {
    next = shardprop::detail::next_record_start(text, at, text.size(), false);
    if (next == shardprop::detail::kNoRecordStart) next = text.size();
    longest = std::max(longest, next - at);
  }
  const std::size_t header = text.find('\n') + 1;
  const std::size_t n = text.size() - header;
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  options.ignore = {"note"};
  constexpr int kParts = 4;
  const std::vector<CsvPartScan> before = scans_before(path, options, kParts);
  std::uint64_t total = 0;
  std::int64_t rows = 0;
  for (int p = 0; p < kParts; ++p) {
    CAPTURE(p);
    const CsvPart part =
        read_csv_part(path, options, p, kParts, before[static_cast<std::size_t>(p)]);
    CHECK(part.bytes_read <= n / kParts + longest + header);
    CHECK(part.bytes_read >= n / kParts);
    total += part.bytes_read;
    rows += part.data.rows;
  }
  CHECK(total >= n);
  CHECK(rows == 25000);
}

TEST_CASE("a part's first line is its first record's line in the whole file", "[csv][parts]") {
  const TempDir dir;
  const Path path = dir / "data.csv";
  // Records start on lines 2, 3, 5 and 6 (line 3's record has a line break inside quotes).
  write_text(path, "a,b,c\n1,2,3\n4,\"x\ny\",6\n7,8,9\n10,11,12\n");
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  options.ignore = {"b"};
  const std::vector<CsvPartScan> before = scans_before(path, options, 40);
  std::vector<std::int64_t> first_lines;
  for (int p = 0; p < 40; ++p) {
    const CsvPart part = read_csv_part(path, options, p, 40, before[static_cast<std::size_t>(p)]);
    if (part.data.rows == 0) {
      CHECK(part.first_line == 0);
      CHECK(part.data.feature_names == Names{"a"});
      continue;
    }
    CHECK(part.data.rows == 1);
    first_lines.push_back(part.first_line);
  }
  CHECK(first_lines == std::vector<std::int64_t>{2, 3, 5, 6});
}

TEST_CASE("streamed parts put together are read_csv's rows at every block size",
          "[csv][parts][stream]") {
  const Labels labels = GENERATE(Labels::numbers, Labels::words);
  const FileShape shape{true, true, true, 2};
  const int records = GENERATE(2, 120);
  const std::size_t block = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{64},
                                     std::size_t{4096}, CsvStream::kDefaultBlockBytes);
  CAPTURE(labels, records, block);
  const TempDir dir;
  const Path path = dir / "data.csv";
  write_text(path, generated_csv(records, shape, labels, 23));
  CsvOptions options = label_options(labels, true);
  options.chunk_bytes = 16;
  const Dataset whole = read_csv(path, options);
  for (const int parts : {1, 2, 3, 5, 7}) {
    CAPTURE(parts);
    require_same(stream_in_parts(path, options, parts, block), whole);
  }
}

TEST_CASE("reading parts needs a target kind that every part agrees on", "[csv][parts]") {
  const TempDir dir;
  const Path path = dir / "data.csv";
  write_text(path, "a,b\n1,2\n");
  const CsvOptions automatic;
  CHECK_THAT(error_of([&] { read_csv_part(path, automatic, 0, 1, {}); }),
             Contains("data.csv: reading a CSV in parts needs target_kind numeric or classes"));
  CsvOptions numeric;
  numeric.target_kind = TargetKind::numeric;
  CHECK_THAT(error_of([&] { read_csv_part(path, numeric, 1, 1, {}); }),
             Contains("there is no part 1 of 1"));
  write_text(path, "\n \n");
  CHECK_THAT(error_of([&] { shardprop::detail::scan_csv_part(path, numeric, 0, 2); }),
             Contains("data.csv: empty file (a header line is required)"));
  numeric.delimiter = '"';
  CHECK_THAT(error_of([&] { shardprop::detail::scan_csv_part(path, numeric, 0, 2); }),
             Contains("the delimiter cannot be a quote"));
}
