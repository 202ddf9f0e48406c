// The plain numeric CSV reader: values, names and target selection on good files, and for bad
// files an Error whose message names FILE:LINE:COLUMN (or FILE:LINE) and the column.
#include <catch2/catch.hpp>

#include <string>
#include <tuple>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;
using shardprop::CsvOptions;
using shardprop::Dataset;
using shardprop::read_csv;
using shardprop::test::TempDir;
using shardprop::test::thrown_message;
using shardprop::test::write_text;

using Names = std::vector<std::string>;
using Values = std::vector<float>;

// Writes `content` to DIR/data.csv and reads it back.
Dataset read_text_csv(const TempDir& dir, const std::string& content,
                      const CsvOptions& options = {}) {
  write_text(dir / "data.csv", content);
  return read_csv(dir / "data.csv", options);
}

// The message of the Error that reading `content` throws; fails the test if nothing is thrown.
std::string csv_error(const TempDir& dir, const std::string& content,
                      const CsvOptions& options = {}) {
  try {
    read_text_csv(dir, content, options);
  } catch (const shardprop::Error& e) {
    return e.what();
  }
  FAIL("read_csv accepted:\n" << content);
  return {};
}

}  // namespace

TEST_CASE("a numeric CSV reads into features, targets and column names", "[csv]") {
  TempDir dir;
  const Dataset data = read_text_csv(dir, "x1,x2,y\n1,2,0\n3.5,-4e-1,1\n0.1,1e3,2\n");
  CHECK(data.rows == 3);
  CHECK(data.feature_count == 2);
  CHECK(data.target_width == 1);
  // Exact: the parser rounds correctly (0.1 → 0.1f) and does not depend on the locale.
  CHECK(data.features == Values{1.0f, 2.0f, 3.5f, -0.4f, 0.1f, 1000.0f});
  CHECK(data.targets == Values{0.0f, 1.0f, 2.0f});
  CHECK(data.feature_names == Names{"x1", "x2"});
  CHECK(data.target_name == "y");
  CHECK_NOTHROW(data.validate());
}

TEST_CASE("the target column is chosen by header name or by 0-based index", "[csv]") {
  TempDir dir;
  const std::string content = "a,b,c\n1,2,3\n4,5,6\n";
  // (option, target name, feature names, features, targets)
  const auto [target, name, features_names, features, targets] =
      GENERATE(table<std::string, std::string, Names, Values, Values>({
          {"", "c", {"a", "b"}, {1, 2, 4, 5}, {3, 6}},
          {"c", "c", {"a", "b"}, {1, 2, 4, 5}, {3, 6}},
          {"a", "a", {"b", "c"}, {2, 3, 5, 6}, {1, 4}},
          {"b", "b", {"a", "c"}, {1, 3, 4, 6}, {2, 5}},
          {"0", "a", {"b", "c"}, {2, 3, 5, 6}, {1, 4}},
          {"1", "b", {"a", "c"}, {1, 3, 4, 6}, {2, 5}},
          {"2", "c", {"a", "b"}, {1, 2, 4, 5}, {3, 6}},
      }));
  CAPTURE(target);
  const Dataset data = read_text_csv(dir, content, CsvOptions{',', target});
  CHECK(data.target_name == name);
  CHECK(data.feature_names == features_names);
  CHECK(data.features == features);
  CHECK(data.targets == targets);
}

TEST_CASE("line endings, a byte order mark, trailing blank lines and spaces are accepted",
          "[csv]") {
  TempDir dir;
  const auto [description, content] = GENERATE(table<std::string, std::string>({
      {"LF", "x1,x2,y\n1,2,0\n3,4,1\n"},
      {"CRLF", "x1,x2,y\r\n1,2,0\r\n3,4,1\r\n"},
      {"no final line end", "x1,x2,y\n1,2,0\n3,4,1"},
      {"UTF-8 BOM", "\xEF\xBB\xBFx1,x2,y\n1,2,0\n3,4,1\n"},
      {"BOM and CRLF", "\xEF\xBB\xBFx1,x2,y\r\n1,2,0\r\n3,4,1\r\n"},
      {"one trailing blank line", "x1,x2,y\n1,2,0\n3,4,1\n\n"},
      {"several trailing blank lines, CRLF and spaces",
       "x1,x2,y\r\n1,2,0\r\n3,4,1\r\n\r\n  \r\n\t\n"},
      {"spaces and tabs around numbers and names", " x1 ,\tx2\t, y\n 1 ,\t2\t,0 \n  3,4  ,  1\n"},
  }));
  CAPTURE(description);
  const Dataset data = read_text_csv(dir, content);
  CHECK(data.rows == 2);
  CHECK(data.features == Values{1, 2, 3, 4});
  CHECK(data.targets == Values{0, 1});
  // No BOM bytes, carriage returns or spaces leak into the names.
  CHECK(data.feature_names == Names{"x1", "x2"});
  CHECK(data.target_name == "y");

  SECTION("the first column can be the target by name even after a BOM or spaces") {
    const Dataset by_name = read_text_csv(dir, content, CsvOptions{',', "x1"});
    CHECK(by_name.target_name == "x1");
    CHECK(by_name.targets == Values{1, 3});
  }
}

TEST_CASE("the delimiter is configurable", "[csv]") {
  TempDir dir;
  const char delimiter = GENERATE(';', '\t', '|');
  CAPTURE(delimiter);
  std::string content = "x1,x2,y\n1,2,0\n";
  for (char& c : content) {
    if (c == ',') c = delimiter;
  }
  const Dataset data = read_text_csv(dir, content, CsvOptions{delimiter, ""});
  CHECK(data.features == Values{1, 2});
  CHECK(data.targets == Values{0});
  CHECK(data.feature_names == Names{"x1", "x2"});
  SECTION("a comma is then not a delimiter but part of a field") {
    const std::string file = (dir / "data.csv").string();
    std::string bad = "a;b\n1,5;2\n";
    for (char& c : bad) {
      if (c == ';') c = delimiter;
    }
    CHECK_THAT(csv_error(dir, bad, CsvOptions{delimiter, ""}),
               Equals(file + ":2:1 (column 1 'a'): '1,5' is not a number"));
  }
}

TEST_CASE("a header without data rows gives an empty dataset with its names", "[csv]") {
  TempDir dir;
  const Dataset data = read_text_csv(dir, "x1,x2,y\n");
  CHECK(data.rows == 0);
  CHECK(data.feature_count == 2);
  CHECK(data.features.empty());
  CHECK(data.targets.empty());
  CHECK(data.feature_names == Names{"x1", "x2"});
}

TEST_CASE("a bad field is reported as FILE:LINE:COLUMN (column N 'name'): what", "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  // (description, content, location after the file name, what)
  const auto [description, content, location,
              what] = GENERATE(table<std::string, std::string, std::string, std::string>({
      {"a word", "x1,x2,y\n1,2,0\n10,abc,1\n", ":3:4 (column 2 'x2')", "'abc' is not a number"},
      {"trailing garbage", "x1,x2,y\n1.5x,2,0\n", ":2:1 (column 1 'x1')", "'1.5x' is not a number"},
      {"two numbers in one field", "x1,x2,y\n1,2 3,0\n", ":2:3 (column 2 'x2')",
       "'2 3' is not a number"},
      {"an empty field in the middle", "x1,x2,y\n1,,0\n", ":2:3 (column 2 'x2')", "empty field"},
      {"an empty last field", "x1,x2,y\n1,2,\n", ":2:5 (column 3 'y')", "empty field"},
      {"a field of spaces", "x1,x2,y\n  ,2,0\n", ":2:1 (column 1 'x1')", "empty field"},
      {"nan", "x1,x2,y\nnan,1,0\n", ":2:1 (column 1 'x1')", "'nan' is not finite"},
      {"NaN", "x1,x2,y\n1,NaN,0\n", ":2:3 (column 2 'x2')", "'NaN' is not finite"},
      {"inf", "x1,x2,y\n1,2,inf\n", ":2:5 (column 3 'y')", "'inf' is not finite"},
      {"-inf", "x1,x2,y\n1,-inf,0\n", ":2:3 (column 2 'x2')", "'-inf' is not finite"},
      {"a float overflow", "x1,x2,y\n1,1e39,0\n", ":2:3 (column 2 'x2')", "'1e39' is not finite"},
      {"a quoted number", "x1,x2,y\n1,\"2\",0\n", ":2:3 (column 2 'x2')",
       "quoted fields are not supported yet"},
      {"a quoted word", "x1,x2,y\n\"a\",2,0\n", ":2:1 (column 1 'x1')",
       "quoted fields are not supported yet"},
      {"an error after CRLF lines", "x1,x2,y\r\n1,2,0\r\n1,2,0\r\n333,4,zz\r\n",
       ":4:7 (column 3 'y')", "'zz' is not a number"},
      {"an error after a BOM (lines count from the file's start)", "\xEF\xBB\xBFx1,x2,y\n1,q,0\n",
       ":2:3 (column 2 'x2')", "'q' is not a number"},
      {"a header name with spaces around it", "x1, long name ,y\n1,?,0\n",
       ":2:3 (column 2 'long name')", "'?' is not a number"},
  }));
  CAPTURE(description, content);
  const std::string message = csv_error(dir, content);
  CHECK_THAT(message, StartsWith(file + location + ": "));
  CHECK_THAT(message, Equals(file + location + ": " + what));
}

TEST_CASE("a row with the wrong number of fields is reported as FILE:LINE: expected K, found M",
          "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  const auto [content, expected] = GENERATE(table<std::string, std::string>({
      {"x1,x2,y\n1,2,0\n1,2\n", ":3: expected 3 fields, found 2"},
      {"x1,x2,y\n1,2,0\n1,2,3,4\n", ":3: expected 3 fields, found 4"},
      {"x1,x2,y\n1\n", ":2: expected 3 fields, found 1"},
      {"x1,x2,y\r\n1,2,0\r\n1,2,0,\r\n", ":3: expected 3 fields, found 4"},
      // A quoted field with a comma is split like any other (quotes are not supported yet).
      {"x1,x2,y\n\"1,5\",2,0\n", ":2: expected 3 fields, found 4"},
  }));
  CAPTURE(content);
  CHECK_THAT(csv_error(dir, content), Equals(file + expected));
}

TEST_CASE("a blank line inside the data is an error naming its line", "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  const auto [content, line] = GENERATE(table<std::string, int>({
      {"x1,x2,y\n1,2,0\n\n3,4,1\n", 3},
      {"x1,x2,y\n\n1,2,0\n", 2},
      {"x1,x2,y\r\n1,2,0\r\n\r\n3,4,1\r\n", 3},
      {"x1,x2,y\n1,2,0\n3,4,1\n  \t\n5,6,0\n\n", 4},
  }));
  CAPTURE(content);
  CHECK_THAT(csv_error(dir, content),
             Equals(file + ":" + std::to_string(line) + ": blank line inside the data"));
}

TEST_CASE("a target that names no column is an error naming the target", "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  const std::string content = "x1,x2,y\n1,2,0\n";
  SECTION("an unknown name") {
    CHECK_THAT(csv_error(dir, content, CsvOptions{',', "label"}),
               Equals(file + ": no column named 'label' in the header"));
  }
  SECTION("names are case-sensitive") {
    CHECK_THAT(csv_error(dir, content, CsvOptions{',', "Y"}),
               Equals(file + ": no column named 'Y' in the header"));
  }
  SECTION("an index past the last column or a negative index") {
    const std::string index = GENERATE(as<std::string>{}, "3", "17", "-1");
    CAPTURE(index);
    CHECK_THAT(csv_error(dir, content, CsvOptions{',', index}),
               Equals(file + ": target column index " + index + " is out of range (3 columns)"));
  }
}

TEST_CASE("an empty or missing file is an error naming the file", "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  SECTION("no bytes, only blank lines, or only a BOM") {
    const std::string content = GENERATE(as<std::string>{}, "", "\n\n", "\r\n", "\xEF\xBB\xBF");
    CAPTURE(content);
    CHECK_THAT(csv_error(dir, content), Equals(file + ": empty file (a header line is required)"));
  }
  SECTION("a header with a single column") {
    CHECK_THAT(csv_error(dir, "y\n1\n"), StartsWith(file + ":1: the header has 1 column"));
  }
  SECTION("a file that does not exist") {
    const std::string missing = (dir / "missing.csv").string();
    CHECK_THAT(thrown_message<shardprop::Error>([&] { read_csv(missing); }),
               Equals(missing + ": cannot open for reading"));
  }
}
