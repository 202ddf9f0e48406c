// Categorical feature columns, one-hot encoded: the vocabulary (sorted by bytes, with counts),
// the inputs' names and rows checked by hand; the same dataset in memory, cached, streamed at
// several block sizes and read in parts; unseen and missing categories, the cap, the hint
// without --categorical, the model metadata, and train → predict/evaluate through the CLI.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli_runner.hpp"
#include "data/csv_categorical.hpp"
#include "data/csv_part.hpp"
#include "data/text_index.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/trained_model.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::CategoricalColumn;
using shardprop::CsvOptions;
using shardprop::CsvStream;
using shardprop::Dataset;
using shardprop::Error;
using shardprop::MissingPolicy;
using shardprop::read_csv;
using shardprop::TargetKind;
using shardprop::test::TempDir;
using shardprop::test::write_text;

using Names = std::vector<std::string>;
using Counts = std::vector<std::int64_t>;

// Two categorical columns around a numeric one; the target in the middle.
constexpr const char* kSmall =
    "x,color,y,size\n"
    "1.5,red,0,S\n"
    "2,blue,1,M\n"
    "-1,red,0,\"L\"\n"
    "0.5,green,1,S\n";

// Inputs: x, color=blue, color=green, color=red, size=L, size=M, size=S.
const std::vector<float> kSmallFeatures = {
    1.5f,  0, 0, 1, 0, 0, 1,  //
    2.0f,  1, 0, 0, 0, 1, 0,  //
    -1.0f, 0, 0, 1, 1, 0, 0,  //
    0.5f,  0, 1, 0, 0, 0, 1,  //
};
const Names kSmallNames = {"x",      "color=blue", "color=green", "color=red",
                           "size=L", "size=M",     "size=S"};

CsvOptions small_options() {
  CsvOptions options;
  options.targets = {"y"};
  options.target_kind = TargetKind::numeric;
  options.categorical = {"color", "size"};
  return options;
}

void check_small_vocabularies(const std::vector<CategoricalColumn>& columns) {
  REQUIRE(columns.size() == 2);
  CHECK(columns[0].column == "color");
  CHECK(columns[0].categories == Names{"blue", "green", "red"});
  CHECK(columns[0].counts == Counts{1, 1, 2});
  CHECK(columns[1].column == "size");
  CHECK(columns[1].categories == Names{"L", "M", "S"});
  CHECK(columns[1].counts == Counts{1, 1, 2});
}

void check_same_rows(const Dataset& a, const Dataset& b) {
  CHECK(a.rows == b.rows);
  CHECK(a.feature_count == b.feature_count);
  CHECK(a.feature_names == b.feature_names);
  CHECK(a.features == b.features);
  CHECK(a.targets == b.targets);
}

// Appends `more`'s rows to `all`; the first piece gives `all` its columns and names.
void append_rows(std::optional<Dataset>& all, const Dataset& more) {
  if (!all) {
    all = more;
    return;
  }
  all->features.insert(all->features.end(), more.features.begin(), more.features.end());
  all->targets.insert(all->targets.end(), more.targets.begin(), more.targets.end());
  all->rows += more.rows;
}

std::string message_of(const std::function<void()>& run) {
  try {
    run();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("categorical columns become one input per category in sorted order",
          "[csv][categorical]") {
  TempDir dir;
  write_text(dir / "small.csv", kSmall);
  CsvOptions options = small_options();
  options.chunk_bytes = GENERATE(std::size_t{1}, std::size_t{9}, std::size_t{4} << 20);
  CAPTURE(options.chunk_bytes);
  const Dataset data = read_csv(dir / "small.csv", options);
  CHECK(data.rows == 4);
  CHECK(data.feature_count == 7);
  CHECK(data.feature_names == kSmallNames);
  CHECK(data.features == kSmallFeatures);
  CHECK(data.targets == std::vector<float>{0, 1, 0, 1});
  CHECK(data.unseen_category_rows == 0);
  check_small_vocabularies(data.categorical);

  SECTION("a listed feature order places the inputs in it") {
    options.features = {"size", "x", "color"};
    const Dataset ordered = read_csv(dir / "small.csv", options);
    CHECK(ordered.feature_names ==
          Names{"size=L", "size=M", "size=S", "x", "color=blue", "color=green", "color=red"});
    CHECK(std::vector<float>(ordered.features.begin(), ordered.features.begin() + 7) ==
          std::vector<float>{0, 0, 1, 1.5f, 0, 0, 1});
  }
  SECTION("numbers are categories as texts") {
    write_text(dir / "numbers.csv", "code,y\n10,0\n9,1\n10.0,0\n9,1\n");
    CsvOptions numbers;
    numbers.categorical = {"code"};
    const Dataset coded = read_csv(dir / "numbers.csv", numbers);
    REQUIRE(coded.categorical.size() == 1);
    CHECK(coded.categorical[0].categories == Names{"10", "10.0", "9"});
    CHECK(coded.categorical[0].counts == Counts{1, 1, 2});
    CHECK(coded.features == std::vector<float>{1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1});
  }
}

TEST_CASE("a categorical column cannot also be a target or ignored", "[csv][categorical]") {
  TempDir dir;
  write_text(dir / "small.csv", kSmall);
  CsvOptions options = small_options();
  SECTION("target") {
    options.categorical = {"y"};
    CHECK_THAT(message_of([&] { read_csv(dir / "small.csv", options); }),
               Contains("column 3 'y' is both a target and categorical"));
  }
  SECTION("ignored") {
    options.ignore = {"size"};
    CHECK_THAT(message_of([&] { read_csv(dir / "small.csv", options); }),
               Contains("column 4 'size' is both categorical and ignored"));
  }
  SECTION("unknown") {
    options.categorical = {"colour"};
    CHECK_THAT(message_of([&] { read_csv(dir / "small.csv", options); }),
               Contains("no column named 'colour' in the header (categorical list)"));
  }
}

TEST_CASE("cached, streamed and part reads encode categories as read_csv does",
          "[csv][categorical]") {
  TempDir dir;
  // Enough rows for several blocks and chunks: categories cycle, one column quoted.
  std::string text = "id,animal,value,city,target\n";
  const char* animals[] = {"cat", "dog", "emu", "\"ant, red\"", "bee"};
  const char* cities[] = {"Oslo", "Lima", "Rome"};
  for (int r = 0; r < 500; ++r) {
    text += std::to_string(r) + "," + animals[(r * 7) % 5] + "," + std::to_string(r % 13) + "," +
            cities[(r / 3) % 3] + "," + std::to_string(r % 2) + "\n";
  }
  write_text(dir / "many.csv", text);
  CsvOptions options;
  options.target_kind = TargetKind::numeric;
  options.categorical = {"animal", "3"};
  options.chunk_bytes = 97;
  const Dataset whole = read_csv(dir / "many.csv", options);
  REQUIRE(whole.categorical.size() == 2);
  CHECK(whole.categorical[0].categories == Names{"ant, red", "bee", "cat", "dog", "emu"});
  CHECK(whole.categorical[0].counts == Counts{100, 100, 100, 100, 100});
  CHECK(whole.categorical[1].categories == Names{"Lima", "Oslo", "Rome"});
  CHECK(whole.feature_count == 1 + 5 + 1 + 3);

  SECTION("cached") {
    const Dataset first = shardprop::read_csv_cached(dir / "many.csv", options, dir / "cache");
    const Dataset second = shardprop::read_csv_cached(dir / "many.csv", options, dir / "cache");
    check_same_rows(first, whole);
    check_same_rows(second, whole);
    CHECK(second.categorical.size() == 2);
    CHECK(second.categorical[0].counts == whole.categorical[0].counts);
    // Another cap is another key: a second cache file.
    CHECK(shardprop::test::directory_entries(dir / "cache").size() == 1);
    options.max_categories = 5;
    const Dataset other = shardprop::read_csv_cached(dir / "many.csv", options, dir / "cache");
    check_same_rows(other, whole);
    CHECK(shardprop::test::directory_entries(dir / "cache").size() == 2);
  }
  SECTION("streamed") {
    const std::vector<CategoricalColumn> collected =
        shardprop::collect_categories(dir / "many.csv", options);
    REQUIRE(collected.size() == 2);
    CHECK(collected[0].categories == whole.categorical[0].categories);
    CHECK(collected[0].counts == whole.categorical[0].counts);
    CHECK(collected[1].counts == whole.categorical[1].counts);
    CsvOptions streamed = options;
    streamed.categories = collected;
    const std::size_t block = GENERATE(std::size_t{1}, std::size_t{100}, std::size_t{4096});
    CAPTURE(block);
    CsvStream stream(dir / "many.csv", streamed, {}, block);
    std::optional<Dataset> all;
    Dataset chunk;
    while (stream.next(chunk)) append_rows(all, chunk);
    REQUIRE(all);
    check_same_rows(*all, whole);
  }
  SECTION("without vocabularies a stream refuses categorical columns") {
    CHECK_THAT(message_of([&] {
                 CsvStream stream(dir / "many.csv", options);
                 Dataset chunk;
                 stream.next(chunk);
               }),
               Contains("streaming categorical columns needs their categories up front"));
  }
  SECTION("parts") {
    const int parts = GENERATE(1, 2, 3);
    CAPTURE(parts);
    std::vector<shardprop::detail::CsvPart> read;
    shardprop::detail::CsvPartScan before;
    for (int p = 0; p < parts; ++p) {
      read.push_back(shardprop::detail::read_csv_part(dir / "many.csv", options, p, parts, before));
      const auto scan = shardprop::detail::scan_csv_part(dir / "many.csv", options, p, parts);
      before.quotes += scan.quotes;
      before.newlines += scan.newlines;
    }
    // The merge read_csv_part does across ranks: the union of the parts' vocabularies.
    shardprop::detail::CategoryCounts counts(2);
    for (const auto& part : read) {
      for (std::size_t k = 0; k < 2; ++k) {
        for (std::size_t i = 0; i < part.data.categorical[k].categories.size(); ++i) {
          counts[k][part.data.categorical[k].categories[i]] += part.data.categorical[k].counts[i];
        }
      }
    }
    const std::vector<CategoricalColumn> merged =
        shardprop::detail::category_vocabularies(read.front().data.categorical, counts);
    std::optional<Dataset> all;
    for (auto& part : read) {
      shardprop::detail::recode_categories(part.data, part.category_positions, merged);
      append_rows(all, part.data);
    }
    REQUIRE(all);
    check_same_rows(*all, whole);
    CHECK(merged[0].counts == whole.categorical[0].counts);
  }
  SECTION("the collective read of one process") {
    const shardprop::DatasetPart part = shardprop::read_csv_part(dir / "many.csv", options);
    check_same_rows(part.rows, whole);
    const std::vector<CategoricalColumn> collected =
        shardprop::collect_categories(dir / "many.csv", options, shardprop::Communicator{});
    CHECK(collected[1].categories == whole.categorical[1].categories);
  }
}

TEST_CASE("a category not in the given vocabulary encodes as all zeros", "[csv][categorical]") {
  TempDir dir;
  write_text(dir / "small.csv", kSmall);
  write_text(dir / "new.csv", "x,color,y,size\n3,purple,1,M\n4,red,0,XL\n5,blue,0,S\n");
  const Dataset train = read_csv(dir / "small.csv", small_options());
  CsvOptions options = small_options();
  options.categories = train.categorical;
  const Dataset data = read_csv(dir / "new.csv", options);
  CHECK(data.feature_names == kSmallNames);
  CHECK(data.features == std::vector<float>{3, 0, 0, 0, 0, 1, 0,  //
                                            4, 0, 0, 1, 0, 0, 0,  //
                                            5, 1, 0, 0, 0, 0, 1});
  CHECK(data.unseen_category_rows == 2);
  // The stored vocabularies are the given ones, counts included.
  CHECK(data.categorical[0].counts == Counts{1, 1, 2});
}

TEST_CASE("given vocabularies give the fitted read's rows in any feature order",
          "[csv][categorical]") {
  TempDir dir;
  write_text(dir / "small.csv", kSmall);
  CsvOptions options = small_options();
  options.features = GENERATE(Names{}, Names{"size", "x", "color"}, Names{"color", "size", "x"});
  options.chunk_bytes = GENERATE(std::size_t{1}, std::size_t{4} << 20);
  CAPTURE(options.features, options.chunk_bytes);
  const Dataset fitted = read_csv(dir / "small.csv", options);
  options.categories = fitted.categorical;
  // The given read parses the numbers straight into their places between the one-hot inputs.
  const Dataset given = read_csv(dir / "small.csv", options);
  CHECK(given.feature_names == fitted.feature_names);
  CHECK(given.features == fitted.features);
  CHECK(given.targets == fitted.targets);
}

TEST_CASE("given vocabularies treat missing, empty and quoted cells as the fitted read does",
          "[csv][categorical]") {
  TempDir dir;
  write_text(dir / "gaps.csv", "x,color,y\n1,red,0\n2,NA,1\n3,,0\n4,\"bl\"\"ue\",1\n5,blue,0\n");
  CsvOptions options;
  options.categorical = {"color"};
  options.missing =
      GENERATE(MissingPolicy::error, MissingPolicy::zero, MissingPolicy::mean, MissingPolicy::drop);
  options.na_values = GENERATE(std::vector<std::string>{"", "NA"}, std::vector<std::string>{"NA"});
  CAPTURE(options.missing, options.na_values);
  CsvOptions fit = options;
  fit.missing = MissingPolicy::zero;
  fit.na_values = {"", "NA"};
  CsvOptions given = options;
  given.categories = read_csv(dir / "gaps.csv", fit).categorical;
  const std::string fitted_error = message_of([&] { read_csv(dir / "gaps.csv", options); });
  const std::string given_error = message_of([&] { read_csv(dir / "gaps.csv", given); });
  CHECK(given_error == fitted_error);
  if (fitted_error != "(no error)") return;
  const Dataset fitted = read_csv(dir / "gaps.csv", options);
  const Dataset read = read_csv(dir / "gaps.csv", given);
  CHECK(read.rows == fitted.rows);
  CHECK(read.features.size() == fitted.features.size());
  for (std::size_t i = 0; i < std::min(read.features.size(), fitted.features.size()); ++i) {
    // NaN marks a row to drop in both.
    CHECK((read.features[i] == fitted.features[i] ||
           (std::isnan(read.features[i]) && std::isnan(fitted.features[i]))));
  }
  CHECK(read.unseen_category_rows == fitted.unseen_category_rows);
}

TEST_CASE("a category field selects its category by its text, not by its bytes as written",
          "[csv][categorical]") {
  // Unquoted fields whose bytes equal a category are encoded without being scanned; the rest
  // (quotes, blanks, a CRLF line end) must come out as their texts do.
  TempDir dir;
  CsvOptions options;
  options.categorical = {"color"};
  options.targets = {"y"};
  options.target_kind = TargetKind::numeric;
  options.chunk_bytes = GENERATE(std::size_t{1}, std::size_t{4} << 20);
  CAPTURE(options.chunk_bytes);

  SECTION("texts written as themselves, in fields that are not") {
    write_text(dir / "fit.csv", "x,y,color\n1,0,blue\n2,1,red\n");
    write_text(dir / "read.csv",
               "x,y,color\r\n1,0,red\r\n2,1, blue\r\n3,0,\"red\"\r\n4,1,\"blue\" \r\n5,0,blue\r\n");
    options.categories = read_csv(dir / "fit.csv", options).categorical;
    const Dataset data = read_csv(dir / "read.csv", options);
    CHECK(data.features == std::vector<float>{1, 0, 1, 2, 1, 0, 3, 0, 1, 4, 1, 0, 5, 1, 0});
    CHECK(data.unseen_category_rows == 0);
  }

  SECTION("texts with blanks or quotes of their own") {
    // The vocabulary holds "red " and a"b: an unquoted `red ` is the text red, not "red ".
    write_text(dir / "fit.csv", "x,color,y\n1,\"red \",0\n2,blue,1\n3,\"a\"\"b\",0\n");
    write_text(dir / "read.csv",
               "x,color,y\n1,red ,0\n2,\"red \",1\n3,blue,0\n4,\"a\"\"b\",1\n5, blue ,0\n");
    const Dataset fitted = read_csv(dir / "fit.csv", options);
    REQUIRE(fitted.categorical.size() == 1);
    CHECK(fitted.categorical[0].categories == Names{"a\"b", "blue", "red "});
    options.categories = fitted.categorical;
    const Dataset data = read_csv(dir / "read.csv", options);
    CHECK(data.features == std::vector<float>{1, 0, 0, 0,  //
                                              2, 0, 0, 1,  //
                                              3, 0, 1, 0,  //
                                              4, 1, 0, 0,  //
                                              5, 0, 1, 0});
    CHECK(data.unseen_category_rows == 1);
  }
}

TEST_CASE("categories first met deep in a large file are fitted and encoded as the rest",
          "[csv][categorical]") {
  // The read starts its vocabularies from the first rows; texts met later, quoted ones too,
  // must land where a vocabulary of the whole file puts them.
  TempDir dir;
  const std::vector<std::string> color_texts{"red",  "green", "blue", "\"q\"\"uoted\"",
                                             "aqua", "NA"};
  const std::vector<std::string> color_values{"red", "green", "blue", "q\"uoted", "aqua", ""};
  const Names colors{"aqua", "blue", "green", "q\"uoted", "red"};
  const std::int64_t rows = 40000;
  std::string csv = "x,color,n2,size,y\n";
  std::vector<std::size_t> color_of(rows);
  std::vector<char> size_of(rows);
  for (std::int64_t r = 0; r < rows; ++r) {
    // The first 20000 rows hold red and green only; then every color, NA included.
    const std::size_t color =
        r < 20000 ? static_cast<std::size_t>(r % 2) : static_cast<std::size_t>((r * 7) % 6);
    color_of[static_cast<std::size_t>(r)] = color;
    size_of[static_cast<std::size_t>(r)] = r == rows - 1 ? 'L' : (r % 3 == 0 ? 'S' : 'M');
    // Appended piecewise: GCC 12 misreports a chain of string + (-Wrestrict).
    csv.append(std::to_string(r % 97)).append(",").append(color_texts[color]).append(",");
    csv.append(std::to_string(r % 5)).append(",").push_back(size_of[static_cast<std::size_t>(r)]);
    csv.append(",").append(std::to_string(r % 2)).append("\n");
  }
  write_text(dir / "deep.csv", csv);
  CsvOptions options;
  options.categorical = {"color", "size"};
  options.targets = {"y"};
  options.target_kind = TargetKind::numeric;
  options.missing = GENERATE(MissingPolicy::zero, MissingPolicy::drop);
  options.chunk_bytes = GENERATE(std::size_t{4096}, std::size_t{4} << 20);
  CAPTURE(options.missing, options.chunk_bytes);
  const Dataset data = read_csv(dir / "deep.csv", options);

  REQUIRE(data.categorical.size() == 2);
  CHECK(data.categorical[0].categories == colors);
  CHECK(data.categorical[1].categories == Names{"L", "M", "S"});
  Counts color_counts(colors.size(), 0);
  Counts size_counts(3, 0);
  std::vector<float> expected;
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::size_t color = color_of[static_cast<std::size_t>(r)];
    const char size = size_of[static_cast<std::size_t>(r)];
    const auto color_index = static_cast<std::size_t>(
        std::find(colors.begin(), colors.end(), color_values[color]) - colors.begin());
    const std::size_t size_index = size == 'L' ? 0 : size == 'M' ? 1 : 2;
    if (color_index < colors.size()) ++color_counts[color_index];
    ++size_counts[size_index];
    if (color_index == colors.size() && options.missing == MissingPolicy::drop) continue;
    std::vector<float> row(1 + colors.size() + 1 + 3, 0.0f);
    row[0] = static_cast<float>(r % 97);
    if (color_index < colors.size()) row[1 + color_index] = 1.0f;
    row[1 + colors.size()] = static_cast<float>(r % 5);
    row[2 + colors.size() + size_index] = 1.0f;
    expected.insert(expected.end(), row.begin(), row.end());
  }
  CHECK(data.categorical[0].counts == color_counts);
  CHECK(data.categorical[1].counts == size_counts);
  CHECK(data.feature_count == 10);
  CHECK(data.rows == static_cast<std::int64_t>(expected.size() / 10));
  CHECK(data.features == expected);
  CHECK(data.unseen_category_rows == 0);
}

TEST_CASE("the text index finds each text it holds and no other", "[csv][categorical]") {
  shardprop::detail::TextIndex index(2);
  std::vector<std::string> texts{""};
  for (int i = 0; i < 3000; ++i) {
    // Short, exactly 8 and 16 bytes, and long texts that share their first 16 bytes.
    texts.push_back(std::to_string(i));
    texts.push_back("abcdefg" + std::string(1, static_cast<char>('a' + i % 26)) +
                    std::to_string(i));
    texts.push_back("0123456789abcdef-" + std::to_string(i));
  }
  texts.push_back("abcdefgh");
  texts.push_back("abcdefghabcdefgh");
  for (std::size_t i = 0; i < texts.size(); ++i) {
    CHECK(index.insert(texts[i], static_cast<std::int32_t>(i)) == static_cast<std::int32_t>(i));
  }
  CHECK(index.size() == texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    CHECK(index.find(texts[i]) == static_cast<std::int32_t>(i));
    // A second insert keeps the first value.
    CHECK(index.insert(texts[i], 7) == static_cast<std::int32_t>(i));
  }
  CHECK(index.size() == texts.size());
  for (const char* absent : {"3000", "abcdefg", "0123456789abcdef-", "abcdefgh ", " "}) {
    CHECK(index.find(absent) == shardprop::detail::TextIndex::kAbsent);
  }
}

TEST_CASE("more categories than the cap is an error naming the column", "[csv][categorical]") {
  TempDir dir;
  write_text(dir / "small.csv", kSmall);
  CsvOptions options = small_options();
  options.max_categories = 2;
  const std::string message = message_of([&] { read_csv(dir / "small.csv", options); });
  CHECK_THAT(message, Contains((dir / "small.csv").string() +
                               ": categorical column 'color' has 3 distinct categories, more "
                               "than the cap of 2") &&
                          Contains("--max-categories") && Contains("--ignore color"));
  CHECK_THAT(message_of([&] { shardprop::collect_categories(dir / "small.csv", options); }),
             Contains("'color' has 3 distinct categories"));
  options.max_categories = 3;
  CHECK(read_csv(dir / "small.csv", options).feature_count == 7);
}

TEST_CASE("a text feature column without --categorical suggests it", "[csv][categorical]") {
  TempDir dir;
  CsvOptions options;
  options.targets = {"y"};
  SECTION("every row holds text") {
    write_text(dir / "small.csv", kSmall);
    options.ignore = {"size"};
    CHECK(message_of([&] { read_csv(dir / "small.csv", options); }) ==
          (dir / "small.csv").string() +
              ":2:5 (column 2 'color'): 'red' is not a number; if column 'color' holds "
              "categories, one-hot encode it with --categorical color");
  }
  SECTION("only some rows hold text, streamed too") {
    write_text(dir / "some.csv", "x,shade,y\n1,2,0\n2,3,1\n3,dark,0\n");
    const std::string expected = (dir / "some.csv").string() +
                                 ":4:3 (column 2 'shade'): 'dark' is not a number; if column "
                                 "'shade' holds categories, one-hot encode it with "
                                 "--categorical shade";
    CHECK(message_of([&] { read_csv(dir / "some.csv", options); }) == expected);
    CHECK(message_of([&] {
            CsvStream stream(dir / "some.csv", options);
            Dataset chunk;
            while (stream.next(chunk)) {
            }
          }) == expected);
  }
}

TEST_CASE("a missing categorical cell follows the missing-value policy", "[csv][categorical]") {
  TempDir dir;
  write_text(dir / "gaps.csv", "x,color,y\n1,red,0\n2,NA,1\n3,,0\n4,blue,1\n");
  CsvOptions options;
  options.categorical = {"color"};
  SECTION("error names the first missing cell") {
    CHECK(message_of([&] { read_csv(dir / "gaps.csv", options); }) ==
          (dir / "gaps.csv").string() +
              ":3:3 (column 2 'color'): missing value 'NA' (CsvOptions::missing is error); fill "
              "it in with --missing mean|median|zero or leave the row out with --missing drop");
  }
  SECTION("zero and mean give all-zero inputs") {
    options.missing = GENERATE(MissingPolicy::zero, MissingPolicy::mean, MissingPolicy::median);
    const Dataset data = read_csv(dir / "gaps.csv", options);
    REQUIRE(data.categorical.size() == 1);
    CHECK(data.categorical[0].categories == Names{"blue", "red"});
    CHECK(data.categorical[0].counts == Counts{1, 1});
    CHECK(data.features == std::vector<float>{1, 0, 1, 2, 0, 0, 3, 0, 0, 4, 1, 0});
    CHECK(data.unseen_category_rows == 0);
  }
  SECTION("drop leaves the rows with a missing cell out") {
    options.missing = MissingPolicy::drop;
    const Dataset data = read_csv(dir / "gaps.csv", options);
    CHECK(data.rows == 2);
    CHECK(data.features == std::vector<float>{1, 0, 1, 4, 1, 0});
  }
  SECTION("an empty cell that is not a missing value is an empty field") {
    options.na_values = {"NA"};
    CHECK_THAT(message_of([&] { read_csv(dir / "gaps.csv", options); }),
               Contains(":3:3 (column 2 'color'): missing value 'NA'"));
    options.missing = MissingPolicy::zero;
    CHECK(message_of([&] { read_csv(dir / "gaps.csv", options); }) ==
          (dir / "gaps.csv").string() + ":4:3 (column 2 'color'): empty field");
  }
}

TEST_CASE("categorical vocabularies round trip through the model metadata",
          "[csv][categorical][checkpoint]") {
  using namespace shardprop;
  TempDir dir;
  Model model(ModelSpec::mlp(4, std::vector<int>{}, 1, Activation::relu, Loss::mse));
  RunMetadata m;
  m.feature_names = {"x", "color=blue", "color=red", "z"};
  m.target_names = {"y"};
  m.categorical = {{"color", {"blue", "red"}, {3, 5}}};
  save_safetensors(model, dir / "m.st", run_metadata_entries(m));
  const TrainedModel trained = load_trained_model(dir / "m.st");
  REQUIRE(trained.categorical.size() == 1);
  CHECK(trained.categorical[0].column == "color");
  CHECK(trained.categorical[0].categories == Names{"blue", "red"});
  CHECK(trained.categorical[0].counts == Counts{3, 5});
  CHECK(source_columns(trained, true) == Names{"x", "color", "z"});
  CsvOptions csv;
  read_options_for(trained, csv);
  CHECK(csv.features == Names{"x", "color", "z"});
  CHECK(csv.categorical == Names{"color"});
  REQUIRE(csv.categories.size() == 1);
  CHECK(csv.categories[0].categories == Names{"blue", "red"});

  SECTION("inputs that do not line up with the feature names are an error") {
    std::map<std::string, std::string> entries = run_metadata_entries(m);
    entries["shardprop.categorical"] =
        R"([{"column": "color", "categories": ["blue", "green"], "counts": [3, 5]}])";
    save_safetensors(model, dir / "bad.st", entries);
    CHECK_THAT(message_of([&] { load_trained_model(dir / "bad.st"); }),
               Contains("metadata 'shardprop.categorical'") &&
                   Contains("input 2 is 'color=red', expected 'color=green'"));
    entries["shardprop.categorical"] =
        R"([{"column": "color", "categories": ["red", "blue"], "counts": [3, 5]}])";
    save_safetensors(model, dir / "bad.st", entries);
    CHECK_THAT(message_of([&] { load_trained_model(dir / "bad.st"); }),
               Contains("not distinct and sorted by bytes"));
  }
}

TEST_CASE("train with --categorical then predict and evaluate a file with an unseen category",
          "[cli][categorical]") {
  using shardprop::test::run_cli;
  TempDir dir;
  // y = 1 for the colours red and blue, whatever x says.
  std::string train = "x,color,y\n";
  const char* colours[] = {"red", "green", "blue", "black"};
  for (int r = 0; r < 200; ++r) {
    const int c = r % 4;
    train += std::to_string((r % 7) * 0.1) + "," + colours[c] + "," +
             (c == 0 || c == 2 ? "1" : "0") + "\n";
  }
  write_text(dir / "train.csv", train);
  write_text(dir / "test.csv", "x,color,y\n0.1,red,1\n0.2,green,0\n0.3,purple,0\n0.4,blue,1\n");
  const bool stream = GENERATE(false, true);
  CAPTURE(stream);
  shardprop::test::Args args = {
      "train", "--data",   "train.csv", "--categorical", "color",    "--loss", "xent", "--epochs",
      "30",    "--layers", "8",         "--out",         "model.st", "--quiet"};
  if (stream) args.push_back("--stream");
  const shardprop::test::Run trained = run_cli(dir, args);
  REQUIRE(trained.exit_code == 0);

  const shardprop::test::Run info = run_cli(dir, {"info", "model.st"});
  CHECK(info.exit_code == 0);
  CHECK_THAT(info.out, Contains("categorical: color: 4 categories"));

  const shardprop::test::Run evaluated =
      run_cli(dir, {"evaluate", "--model", "model.st", "--data", "test.csv", "--json"});
  REQUIRE(evaluated.exit_code == 0);
  const nlohmann::json report = nlohmann::json::parse(evaluated.out);
  CHECK(report["rows"] == 4);
  CHECK(report["unseen_category_rows"] == 1);
  CHECK_THAT(evaluated.err, Contains("1 rows had a category not seen in training"));

  const shardprop::test::Run predicted =
      run_cli(dir, {"predict", "--model", "model.st", "--data", "test.csv", "--output", "out.csv"});
  REQUIRE(predicted.exit_code == 0);
  CHECK_THAT(predicted.err, Contains("test.csv: 1 rows had a category not seen in training"));
  const std::vector<std::string> lines =
      shardprop::test::lines_of(shardprop::test::read_text(dir / "out.csv"));
  REQUIRE(lines.size() == 5);
  CHECK(lines[1] == "1");
  CHECK(lines[2] == "0");
  CHECK(lines[4] == "1");
}
