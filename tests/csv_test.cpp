// The CSV reader: values, names, targets, labels and ignored columns on good files; for bad
// files an Error whose message names FILE:LINE:COLUMN (or FILE:LINE) and the column; and the
// same result, bit for bit, whatever the chunk size and the thread count.
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::StartsWith;
using shardprop::CsvOptions;
using shardprop::Dataset;
using shardprop::read_csv;
using shardprop::TargetKind;
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

CsvOptions target_options(const std::string& target) {
  CsvOptions options;
  if (!target.empty()) options.targets = {target};
  return options;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Everything read_csv fills in, values compared bit for bit.
void check_identical(const Dataset& a, const Dataset& b) {
  CHECK(a.rows == b.rows);
  CHECK(a.feature_count == b.feature_count);
  CHECK(a.target_width == b.target_width);
  CHECK(same_bits(a.features, b.features));
  CHECK(same_bits(a.targets, b.targets));
  CHECK(a.feature_names == b.feature_names);
  CHECK(a.target_names == b.target_names);
  CHECK(a.class_names == b.class_names);
}

// The shortest text that reads back as exactly `value`.
std::string shortest(float value, std::chars_format format = std::chars_format::general) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, format);
  return {buffer, result.ptr};
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
  CHECK(data.target_names == Names{"y"});
  CHECK(data.class_names.empty());
  CHECK_NOTHROW(data.validate());
}

TEST_CASE("numbers in every form round to the nearest float", "[csv]") {
  TempDir dir;
  // (text, value): short forms take the reader's fast path, the rest fast_float's.
  const auto [text, value] = GENERATE(table<std::string, float>({
      {"0", 0.0f},
      {"-0", -0.0f},
      {"007", 7.0f},
      {"255", 255.0f},
      {"16777216", 16777216.0f},
      {"16777217", 16777216.0f},
      {"123456789", 123456792.0f},
      {"0.1", 0.1f},
      {"-1.013648", -1.013648f},
      {"0.01410023", 0.01410023f},
      {"3.14159265358979", 3.14159265f},
      {".5", 0.5f},
      {"5.", 5.0f},
      {"+2.5", 2.5f},
      {"1e-3", 0.001f},
      {"-2.5E+2", -250.0f},
      {"1e-50", 0.0f},
      {"3.4028234e38", 3.4028234e38f},
      {"0.000000000001", 1e-12f},
  }));
  CAPTURE(text);
  const Dataset data = read_text_csv(dir, "x,y\n" + text + ",1\n");
  REQUIRE(data.features.size() == 1);
  CHECK(std::memcmp(&data.features[0], &value, sizeof value) == 0);
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
  const Dataset data = read_text_csv(dir, content, target_options(target));
  CHECK(data.target_names == Names{name});
  CHECK(data.feature_names == features_names);
  CHECK(data.features == features);
  CHECK(data.targets == targets);
}

TEST_CASE("several target columns make a multi-output target in the order given", "[csv]") {
  TempDir dir;
  const std::string content = "a,b,c,d\n1,2,3,4\n5,6,7,8\n";
  CsvOptions options;
  options.targets = {"d", "1"};
  const Dataset data = read_text_csv(dir, content, options);
  CHECK(data.target_width == 2);
  CHECK(data.target_names == Names{"d", "b"});
  CHECK(data.targets == Values{4, 2, 8, 6});
  CHECK(data.feature_count == 2);
  CHECK(data.feature_names == Names{"a", "c"});
  CHECK(data.features == Values{1, 3, 5, 7});
  CHECK(data.class_names.empty());
  CHECK(data.row_targets(1)[0] == 8.0f);
}

TEST_CASE("ignored columns are skipped, whatever they hold", "[csv]") {
  TempDir dir;
  // The id and the note are neither numbers nor always present: only their quoting counts.
  const std::string content =
      "id,x1,note,x2,y\n"
      "a-1,1,\"text, with \"\"quotes\"\"\nand a line break\",2,0\n"
      ",3,,4,1\n";
  CsvOptions options;
  options.ignore = GENERATE(Names{"id", "note"}, Names{"0", "2"}, Names{"note", "0", "id"});
  CAPTURE(options.ignore);
  const Dataset data = read_text_csv(dir, content, options);
  CHECK(data.rows == 2);
  CHECK(data.feature_names == Names{"x1", "x2"});
  CHECK(data.features == Values{1, 2, 3, 4});
  CHECK(data.targets == Values{0, 1});
}

TEST_CASE("line endings, a byte order mark, trailing blank lines and spaces are accepted",
          "[csv]") {
  TempDir dir;
  const auto [description, content] = GENERATE(table<std::string, std::string>({
      {"LF", "x1,x2,y\n1,2,0\n3,4,1\n"},
      {"CRLF", "x1,x2,y\r\n1,2,0\r\n3,4,1\r\n"},
      {"no final line end", "x1,x2,y\n1,2,0\n3,4,1"},
      {"no final line end after CR", "x1,x2,y\r\n1,2,0\r\n3,4,1\r"},
      {"UTF-8 BOM", "\xEF\xBB\xBFx1,x2,y\n1,2,0\n3,4,1\n"},
      {"BOM and CRLF", "\xEF\xBB\xBFx1,x2,y\r\n1,2,0\r\n3,4,1\r\n"},
      {"one trailing blank line", "x1,x2,y\n1,2,0\n3,4,1\n\n"},
      {"several trailing blank lines, CRLF and spaces",
       "x1,x2,y\r\n1,2,0\r\n3,4,1\r\n\r\n  \r\n\t\n"},
      {"spaces and tabs around numbers and names", " x1 ,\tx2\t, y\n 1 ,\t2\t,0 \n  3,4  ,  1\n"},
      {"quoted names and numbers", "\"x1\",\"x2\",\"y\"\n\"1\",2,\"0\"\n3,\" 4 \",1\n"},
      {"blanks around quotes and before CRLF", "x1,x2,y\r\n \"1\" ,2,0 \r\n3,4,\"1\"\t\r\n"},
  }));
  CAPTURE(description);
  const Dataset data = read_text_csv(dir, content);
  CHECK(data.rows == 2);
  CHECK(data.features == Values{1, 2, 3, 4});
  CHECK(data.targets == Values{0, 1});
  // No BOM bytes, carriage returns, quotes or spaces leak into the names.
  CHECK(data.feature_names == Names{"x1", "x2"});
  CHECK(data.target_names == Names{"y"});

  SECTION("the first column can be the target by name even after a BOM or spaces") {
    const Dataset by_name = read_text_csv(dir, content, target_options("x1"));
    CHECK(by_name.target_names == Names{"x1"});
    CHECK(by_name.targets == Values{1, 3});
  }
}

TEST_CASE("quoted fields follow RFC 4180: delimiters, doubled quotes and line breaks inside",
          "[csv]") {
  TempDir dir;
  const std::string content =
      "\"a,1\",\"b \"\"2\"\"\",\"label\nname\"\n"
      "\"1.5\",-2,\"cat, black\"\r\n"
      "3,\"4\",\"dog \"\"rex\"\"\"\n"
      "5,6,\"two\nlines\"\n"
      "7,8,cat\n";
  const Dataset data = read_text_csv(dir, content);
  CHECK(data.rows == 4);
  CHECK(data.feature_names == Names{"a,1", "b \"2\""});
  CHECK(data.target_names == Names{"label\nname"});
  CHECK(data.features == Values{1.5f, -2, 3, 4, 5, 6, 7, 8});
  // Byte order: "cat" < "cat, black" < "dog \"rex\"" < "two\nlines".
  CHECK(data.class_names == Names{"cat", "cat, black", "dog \"rex\"", "two\nlines"});
  CHECK(data.targets == Values{1, 2, 3, 0});
}

TEST_CASE("without a header the first line is data and columns are named by index", "[csv]") {
  TempDir dir;
  CsvOptions options;
  options.header = false;
  SECTION("default target: the last column") {
    const Dataset data = read_text_csv(dir, "1,2,0\n3,4,1\n", options);
    CHECK(data.rows == 2);
    CHECK(data.feature_names == Names{"0", "1"});
    CHECK(data.target_names == Names{"2"});
    CHECK(data.features == Values{1, 2, 3, 4});
    CHECK(data.targets == Values{0, 1});
  }
  SECTION("a target and an ignored column by index") {
    options.targets = {"0"};
    options.ignore = {"1"};
    const Dataset data = read_text_csv(dir, "7,x,2,0\n8,y,4,1\n", options);
    CHECK(data.target_names == Names{"0"});
    CHECK(data.feature_names == Names{"2", "3"});
    CHECK(data.features == Values{2, 0, 4, 1});
    CHECK(data.targets == Values{7, 8});
  }
  SECTION("errors in the first line name line 1") {
    const std::string file = (dir / "data.csv").string();
    CHECK_THAT(
        csv_error(dir, "1,a,0\n", options),
        Equals(file + ":1:3 (column 2 '1'): 'a' is not a number; if column '1' holds categories, "
                      "one-hot encode it with --categorical 1"));
    CHECK_THAT(csv_error(dir, "1,2,\"0\n", options),
               Equals(file + ":1:5 (column 3 '2'): unterminated quote"));
    CHECK_THAT(csv_error(dir, "1\n", options),
               Equals(file + ":1: the first line has 1 field; at least one feature and one "
                             "target are needed"));
  }
}

TEST_CASE("the delimiter is configurable", "[csv]") {
  TempDir dir;
  const char delimiter = GENERATE(';', '\t', '|', ' ');
  CAPTURE(delimiter);
  CsvOptions options;
  options.delimiter = delimiter;
  std::string content = "x1,x2,y\n1,2,0\n";
  for (char& c : content) {
    if (c == ',') c = delimiter;
  }
  const Dataset data = read_text_csv(dir, content, options);
  CHECK(data.features == Values{1, 2});
  CHECK(data.targets == Values{0});
  CHECK(data.feature_names == Names{"x1", "x2"});
  SECTION("a comma is then not a delimiter but part of a field") {
    const std::string file = (dir / "data.csv").string();
    std::string bad = "a;b\n1,5;2\n";
    for (char& c : bad) {
      if (c == ';') c = delimiter;
    }
    CHECK_THAT(csv_error(dir, bad, options),
               Equals(file + ":2:1 (column 1 'a'): '1,5' is not a number; if column 'a' holds "
                             "categories, one-hot encode it with --categorical a"));
  }
  SECTION("a quote, a line break or NUL cannot be the delimiter") {
    const std::string file = (dir / "data.csv").string();
    options.delimiter = GENERATE('"', '\n', '\r', '\0');
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": the delimiter cannot be a quote, CR, LF or NUL"));
  }
}

TEST_CASE("a header without data rows gives an empty dataset with its names", "[csv]") {
  TempDir dir;
  const std::string content = GENERATE(as<std::string>{}, "x1,x2,y\n", "x1,x2,y", "x1,x2,y\n\n");
  const Dataset data = read_text_csv(dir, content);
  CHECK(data.rows == 0);
  CHECK(data.feature_count == 2);
  CHECK(data.features.empty());
  CHECK(data.targets.empty());
  CHECK(data.feature_names == Names{"x1", "x2"});
  CHECK(data.target_names == Names{"y"});
}

TEST_CASE("class labels map to indices in sorted order and keep their names", "[csv]") {
  TempDir dir;
  SECTION("automatic: text labels make classes, sorted by bytes") {
    const Dataset data = read_text_csv(dir, "x,kind\n1,dog\n2,cat\n3,\"bird\"\n4, cat \n5,Dog\n");
    CHECK(data.class_names == Names{"Dog", "bird", "cat", "dog"});
    CHECK(data.targets == Values{3, 2, 1, 2, 0});
    CHECK(data.class_count() == 4);
  }
  SECTION("automatic: all-number labels stay numbers") {
    const Dataset data = read_text_csv(dir, "x,y\n1,10\n2,2\n3,-1.5\n");
    CHECK(data.class_names.empty());
    CHECK(data.targets == Values{10, 2, -1.5f});
  }
  SECTION("automatic: a single text label makes the whole column labels") {
    // (n/a, a missing value by default, is not a label: csv_missing_test.cpp)
    const Dataset data = read_text_csv(dir, "x,y\n1,10\n2,2\n3,na\n4,10\n");
    CHECK(data.class_names == Names{"10", "2", "na"});  // not all numbers: byte order
    CHECK(data.targets == Values{0, 1, 2, 0});
  }
  SECTION("classes: numeric labels sort by value, and keep their text") {
    CsvOptions options;
    options.target_kind = TargetKind::classes;
    const Dataset data = read_text_csv(dir, "x,y\n1,10\n2,2\n3,-1.5\n4,2\n5,1e1\n", options);
    // "10" and "1e1" are equal values but different texts: two classes, tie broken by bytes.
    CHECK(data.class_names == Names{"-1.5", "2", "10", "1e1"});
    CHECK(data.targets == Values{2, 1, 0, 1, 3});
  }
  SECTION("classes: labels are exact texts after blanks and quotes are removed") {
    CsvOptions options;
    options.target_kind = TargetKind::classes;
    const Dataset data =
        read_text_csv(dir, "x,y\n1,1\n2,\"1\"\n3, 1 \n4,1.0\n5,\"a\"\"b\"\n6,\" 1\"\n", options);
    CHECK(data.class_names == Names{" 1", "1", "1.0", "a\"b"});
    CHECK(data.targets == Values{1, 1, 1, 2, 3, 0});
  }
  SECTION("the class count is the number of names") {
    CsvOptions options;
    options.target_kind = TargetKind::classes;
    const Dataset data = read_text_csv(dir, "x,y\n1,7\n2,7\n", options);
    CHECK(data.class_names == Names{"7"});
    CHECK(data.targets == Values{0, 0});
    CHECK(data.class_count() == 1);
  }
  SECTION("numeric: class indices given as integers are read as numbers") {
    CsvOptions options;
    options.target_kind = TargetKind::numeric;
    const Dataset data = read_text_csv(dir, "x,y\n1,2\n2,0\n", options);
    CHECK(data.class_names.empty());
    CHECK(data.targets == Values{2, 0});
  }
}

TEST_CASE("nan and inf are rejected unless allowed, and never in targets", "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  CsvOptions options;
  options.allow_non_finite = true;
  options.na_values = {};  // nan is a missing value by default (csv_missing_test.cpp)
  SECTION("allowed in features") {
    const Dataset data = read_text_csv(dir, "a,b,c,y\nnan,inf,-Infinity,1\n", options);
    CHECK(std::isnan(data.features[0]));
    CHECK(data.features[1] == std::numeric_limits<float>::infinity());
    CHECK(data.features[2] == -std::numeric_limits<float>::infinity());
  }
  SECTION("never in a numeric target, nor a number too large for a float") {
    CHECK_THAT(csv_error(dir, "a,y\n1,nan\n", options),
               Equals(file + ":2:3 (column 2 'y'): 'nan' is not finite"));
    CHECK_THAT(csv_error(dir, "a,y\n1e39,1\n", options),
               Equals(file + ":2:1 (column 1 'a'): '1e39' is too large for a float"));
    options.targets = {"a", "y"};
    options.ignore = {};
    CHECK_THAT(csv_error(dir, "a,b,y\n1,2,3\n-inf,2,3\n", options),
               Equals(file + ":3:1 (column 1 'a'): '-inf' is not finite"));
  }
  SECTION("in an automatic target column, only when the column is numeric") {
    options.allow_non_finite = false;
    CHECK_THAT(csv_error(dir, "a,y\n1,1\n2,2\n3,inf\n4,nan\n", options),
               Equals(file + ":4:3 (column 2 'y'): 'inf' is not finite"));
    const Dataset labels = read_text_csv(dir, "a,y\n1,nan\n2,cat\n", options);
    CHECK(labels.class_names == Names{"cat", "nan"});
  }
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
      {"a sign alone", "x1,x2,y\n-,2,0\n", ":2:1 (column 1 'x1')", "'-' is not a number"},
      {"an exponent without digits", "x1,x2,y\n1e,2,0\n", ":2:1 (column 1 'x1')",
       "'1e' is not a number"},
      {"a lone CR inside a field", "x1,x2,y\n1\r2,2,0\n", ":2:1 (column 1 'x1')",
       "'1\\r2' is not a number"},
      {"an empty field in the middle", "x1,x2,y\n1,,0\n", ":2:3 (column 2 'x2')", "empty field"},
      {"an empty last field", "x1,x2,y\n1,2,\n", ":2:5 (column 3 'y')", "empty field"},
      {"an empty last field before CRLF", "x1,x2,y\r\n1,2,\r\n", ":2:5 (column 3 'y')",
       "empty field"},
      {"a field of spaces", "x1,x2,y\n  ,2,0\n", ":2:1 (column 1 'x1')", "empty field"},
      {"an empty quoted field", "x1,x2,y\n1,\"\",0\n", ":2:3 (column 2 'x2')", "empty field"},
      {"an empty label", "x1,x2,y\n1,2,a\n1,2,\"\"\n", ":3:5 (column 3 'y')", "empty field"},
      {"nan", "x1,x2,y\nnan,1,0\n", ":2:1 (column 1 'x1')", "'nan' is not finite"},
      {"NaN", "x1,x2,y\n1,NaN,0\n", ":2:3 (column 2 'x2')", "'NaN' is not finite"},
      {"inf", "x1,x2,y\n1,2,inf\n", ":2:5 (column 3 'y')", "'inf' is not finite"},
      {"-inf", "x1,x2,y\n1,-inf,0\n", ":2:3 (column 2 'x2')", "'-inf' is not finite"},
      {"a float overflow", "x1,x2,y\n1,1e39,0\n", ":2:3 (column 2 'x2')",
       "'1e39' is too large for a float"},
      {"a negative overflow", "x1,x2,y\n1,-3.5e38,0\n", ":2:3 (column 2 'x2')",
       "'-3.5e38' is too large for a float"},
      {"a quoted word", "x1,x2,y\n\"a\",2,0\n", ":2:1 (column 1 'x1')", "'a' is not a number"},
      {"a quoted number with a doubled quote", "x1,x2,y\n\"1\"\"\",2,0\n", ":2:1 (column 1 'x1')",
       "'1\"\"' is not a number"},
      {"a long value is shortened", "x1,x2,y\n1,2,0\n" + std::string(50, '7') + "x,2,0\n",
       ":3:1 (column 1 'x1')", "'" + std::string(40, '7') + "...' is not a number"},
      {"an error after CRLF lines", "x1,x2,y\r\n1,2,0\r\n1,2,0\r\n333,zz,0\r\n",
       ":4:5 (column 2 'x2')", "'zz' is not a number"},
      {"an error after a BOM (lines count from the file's start)", "\xEF\xBB\xBFx1,x2,y\n1,q,0\n",
       ":2:3 (column 2 'x2')", "'q' is not a number"},
      {"a header name with spaces around it", "x1, long name ,y\n1,?,0\n",
       ":2:3 (column 2 'long name')", "'?' is not a number"},
      {"after a quoted field with line breaks (lines are physical lines)",
       "x1,x2,y\n1,2,\"a\nb\"\n3,x,c\n", ":4:3 (column 2 'x2')", "'x' is not a number"},
      {"a quoted field is located where its quote opens", "x1,x2,y\n1,2,a\n3,\"4\n5\",b\n",
       ":3:3 (column 2 'x2')", "'4\\n5' is not a number"},
      {"the first bad value of a record", "x1,x2,y\n1,2,0\nu,v,w\n", ":3:1 (column 1 'x1')",
       "'u' is not a number"},
  }));
  CAPTURE(description, content);
  CsvOptions options;
  options.na_values = {};  // empty fields, nan and ? are missing values by default
  const std::string message = csv_error(dir, content, options);
  CHECK_THAT(message, StartsWith(file + location + ": "));
  // A feature column's text adds a hint (csv_categorical_test.cpp checks it).
  CHECK_THAT(message, StartsWith(file + location + ": " + what));
}

TEST_CASE("bad quoting is reported at the quote: a quoted field's opening one, or a stray one",
          "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  const auto [description, content, expected] =
      GENERATE(table<std::string, std::string, std::string>({
          {"an unterminated quote names the line where it opened",
           "x1,x2,y\n1,2,0\n3,\"4,0\n5,6,1\n7,8,1\n", ":3:3 (column 2 'x2'): unterminated quote"},
          {"an unterminated quote in the last field", "x1,x2,y\n1,2,0\n3,4,\"1",
           ":3:5 (column 3 'y'): unterminated quote"},
          {"an unterminated quote after blanks: the quote, not the field's first byte",
           "x1,x2,y\n1,2,0\n3,  \"4,0\n", ":3:5 (column 2 'x2'): unterminated quote"},
          {"an unterminated quote in the header", "x1,\"x2,y\n1,2,0\n",
           ":1:4 (column 2): unterminated quote"},
          {"an unterminated quote after blanks in the header", "x1, \"x2,y\n1,2,0\n",
           ":1:5 (column 2): unterminated quote"},
          {"characters after the closing quote: the field's opening quote", "x1,x2,y\n1,\"2\"x,0\n",
           ":2:3 (column 2 'x2'): characters after the closing quote"},
          {"a second quoted part", "x1,x2,y\n1,\"2\" \"3\",0\n",
           ":2:3 (column 2 'x2'): characters after the closing quote"},
          {"characters after the closing quote, after blanks", "x1,x2,y\n1, \"2\n\"x,0\n",
           ":2:4 (column 2 'x2'): characters after the closing quote"},
          {"a quote inside an unquoted field", "x1,x2,y\n1,2,ab\"c\n",
           ":2:7 (column 3 'y'): quote inside an unquoted field"},
          {"a quote inside an ignored column still counts", "x1,x2,y\n1,2,0\n1,a\"b,0\n",
           ":3:4 (column 2 'x2'): quote inside an unquoted field"},
          {"quoting comes before the field count", "x1,x2,y\n1,2,\"a\"b,0,0\n",
           ":2:5 (column 3 'y'): characters after the closing quote"},
          {"quoting problems after the last column are located too", "x1,x2,y\n1,2,0,\"5\n",
           ":2:7 (column 4): unterminated quote"},
      }));
  CAPTURE(description, content);
  CsvOptions options;
  if (description.find("ignored") != std::string::npos) options.ignore = {"x2"};
  CHECK_THAT(csv_error(dir, content, options), Equals(file + expected));
}

TEST_CASE("a row with the wrong number of fields is reported as FILE:LINE: expected K, found M",
          "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  const auto [content, expected] = GENERATE(table<std::string, std::string>({
      {"x1,x2,y\n1,2,0\n1,2\n", ":3: expected 3 fields, found 2"},
      {"x1,x2,y\n1,2,0\n1,2,3,4\n", ":3: expected 3 fields, found 4"},
      {"x1,x2,y\n1\n", ":2: expected 3 fields, found 1"},
      {"x1,x2,y\n\"\"\n", ":2: expected 3 fields, found 1"},
      {"x1,x2,y\r\n1,2,0\r\n1,2,0,\r\n", ":3: expected 3 fields, found 4"},
      {"x1,x2,y\n1,2,0\n1,2", ":3: expected 3 fields, found 2"},
      // The field count comes before the values: nothing is read into the wrong column.
      {"x1,x2,y\nabc,2\n", ":2: expected 3 fields, found 2"},
      {"x1,x2,y\n1,abc,2,3\n", ":2: expected 3 fields, found 4"},
      // A record is located where it starts, even when a quoted field spans lines.
      {"x1,x2,y\n1,\"a\nb\"\n", ":2: expected 3 fields, found 2"},
      {"x1,x2,y\n\"1,5\",2\n", ":2: expected 3 fields, found 2"},
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
  SECTION("a blank first line is not a header") {
    CHECK_THAT(csv_error(dir, "\nx1,x2,y\n1,2,0\n"), Equals(file + ":1: the header line is blank"));
  }
}

TEST_CASE("target and ignore lists that name no column, or clash, are errors naming them",
          "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  const std::string content = "x1,x2,y\n1,2,0\n";
  CsvOptions options;
  SECTION("an unknown target name") {
    options.targets = {"label"};
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": no column named 'label' in the header"));
  }
  SECTION("names are case-sensitive") {
    options.targets = {"Y"};
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": no column named 'Y' in the header"));
  }
  SECTION("a target index past the last column or a negative index") {
    const std::string index = GENERATE(as<std::string>{}, "3", "17", "-1");
    CAPTURE(index);
    options.targets = {index};
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": target column index " + index + " is out of range (3 columns)"));
  }
  SECTION("an unknown ignored column") {
    options.ignore = {"x3"};
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": no column named 'x3' in the header (ignore list)"));
    options.ignore = {"9"};
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": ignored column index 9 is out of range (3 columns)"));
  }
  SECTION("a column both target and ignored") {
    options.ignore = {"2"};
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": column 3 'y' is both a target and ignored"));
  }
  SECTION("a target listed twice") {
    options.targets = {"y", "2"};
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": column 3 'y' is listed twice as a target"));
  }
  SECTION("no feature column left") {
    options.targets = {"x1"};
    options.ignore = {"x2", "y"};
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": no feature column left (3 columns; targets: 1, ignored: 2)"));
  }
  SECTION("a name two columns share") {
    options.targets = {"x"};
    CHECK_THAT(csv_error(dir, "x,a,x\n1,2,3\n", options),
               Equals(file + ": column name 'x' is ambiguous (columns 1 and 3)"));
  }
  SECTION("class labels with several targets") {
    options.targets = {"x2", "y"};
    options.target_kind = TargetKind::classes;
    CHECK_THAT(csv_error(dir, content, options),
               Equals(file + ": class labels need exactly one target column, 2 were given"));
  }
  SECTION("text in a multi-output target is not a number") {
    options.targets = {"x2", "y"};
    CHECK_THAT(csv_error(dir, "x1,x2,y\n1,2,cat\n", options),
               Equals(file + ":2:5 (column 3 'y'): 'cat' is not a number"));
  }
}

TEST_CASE("an empty or missing file is an error naming the file", "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  SECTION("no bytes, only blank lines, or only a BOM") {
    const std::string content =
        GENERATE(as<std::string>{}, "", "\n\n", "\r\n", "\xEF\xBB\xBF", " \t\n");
    CAPTURE(content);
    CHECK_THAT(csv_error(dir, content), Equals(file + ": empty file (a header line is required)"));
    CsvOptions options;
    options.header = false;
    CHECK_THAT(csv_error(dir, content, options), Equals(file + ": empty file"));
  }
  SECTION("a header with a single column") {
    CHECK_THAT(csv_error(dir, "y\n1\n"),
               Equals(file + ":1: the header has 1 column; at least one feature and one target "
                             "are needed"));
  }
  SECTION("a file that does not exist, or a directory") {
    const std::string missing = (dir / "missing.csv").string();
    CHECK_THAT(thrown_message<shardprop::Error>([&] { read_csv(missing); }),
               Equals(missing + ": cannot open: No such file or directory"));
    CHECK_THAT(thrown_message<shardprop::Error>([&] { read_csv(dir.path()); }),
               Equals(dir.path().string() + ": cannot open: Is a directory"));
  }
  SECTION("a chunk size of zero") {
    CsvOptions options;
    options.chunk_bytes = 0;
    CHECK_THAT(csv_error(dir, "x,y\n1,2\n", options),
               Equals(file + ": chunk_bytes must be at least 1"));
  }
}

namespace {

// Inputs whose records and quoted fields cross chunk edges at every small chunk size.
const std::vector<std::pair<std::string, std::string>>& tricky_files() {
  static const std::vector<std::pair<std::string, std::string>> files = {
      {"plain numbers", "a,b,y\n1,2,3\n4.5,-6,7\n8e1,9,10\n11,12,13\n"},
      {"quoted fields with delimiters, doubled quotes and line breaks",
       "\"a,\"\"x\"\"\",b,label\n"
       "1,\"2\",\"x,y\"\n"
       "3,4,\"q\"\"uote\"\"\"\n"
       "\"5\",6,\"multi\nline\nlabel\"\n"
       "7,8,\",\n,\"\n"
       "9,10,\"x,y\"\n"},
      {"CRLF, blanks and a BOM",
       "\xEF\xBB\xBF a , b ,y\r\n 1 ,2,0\r\n\"3\" , 4 ,1\r\n5,6,\"0\"\r\n\r\n"},
      {"a quoted field longer than the chunks", "a,b,y,note\n1,2,0,\"" + std::string(100, 'z') +
                                                    "\n\"\"" + std::string(30, ',') +
                                                    "\"\n3,4,1,short\n"},
      {"only quotes", "\"a\",\"b\",\"c\"\n\"1\",\"2\",\"x\"\n\"3\",\"4\",\"\"\"\"\n"},
      {"no final line end", "a,b,y\n1,2,3\n4,5,6"},
  };
  return files;
}

const std::vector<std::pair<std::string, std::string>>& malformed_files() {
  static const std::vector<std::pair<std::string, std::string>> files = {
      {"an unterminated quote early, valid quoting later",
       "a,b,y\n1,2,0\n3,\"4,0\n5,6,\"x\"\n7,8,\"y,z\"\n9,10,\"1\"\n"},
      {"a quote inside an unquoted field flips the quote parity",
       "a,b,y\n1,2,0\n3,4\"5,0\n6,\"7\n8\",0\n9,10,\"z\"\n"},
      {"characters after a closing quote", "a,b,y\n1,2,\"x\ny\"z,0\n3,4,\"w\"\n"},
      {"a bad number after quoted line breaks", "a,b,y\n1,2,\"x\ny\"\n3,\"4\",\"z\nw\"\n6,?,0\n"},
      {"a wrong field count after quotes", "a,b,y\n\"1\",\"2\",\"3\"\n\"4\",\"5\"\n6,7,8\n"},
      {"a blank line between quoted records", "a,b,y\n1,2,\"x\"\n\n3,4,\"y\"\n"},
      {"only the last record is bad", "a,b,y\n1,2,\"a\"\n3,4,\"b\"\n5,6,\"c"},
      {"a non-finite label found late", "a,y\n1,\"2\"\n2,\" 3\"\n3,1e40\n4,5\n"},
  };
  return files;
}

const std::vector<std::size_t>& chunk_sizes() {
  static const std::vector<std::size_t> sizes = {1, 2, 3, 7, 64, CsvOptions{}.chunk_bytes};
  return sizes;
}

}  // namespace

TEST_CASE("records and quoted fields split across chunk edges read as in one chunk", "[csv]") {
  TempDir dir;
  for (const auto& [description, content] : tricky_files()) {
    CAPTURE(description);
    const Dataset whole = read_text_csv(dir, content);
    CHECK(whole.rows > 0);
    for (const std::size_t chunk_bytes : chunk_sizes()) {
      CAPTURE(chunk_bytes);
      CsvOptions options;
      options.chunk_bytes = chunk_bytes;
      check_identical(read_csv(dir / "data.csv", options), whole);
    }
  }
}

TEST_CASE("the quoted-field file reads the labels and values it holds", "[csv]") {
  TempDir dir;
  const Dataset data = read_text_csv(dir, tricky_files()[1].second);
  CHECK(data.feature_names == Names{"a,\"x\"", "b"});
  CHECK(data.features == Values{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  CHECK(data.class_names == Names{",\n,", "multi\nline\nlabel", "q\"uote\"", "x,y"});
  CHECK(data.targets == Values{3, 2, 1, 0, 3});
}

TEST_CASE("errors are reported identically at every chunk size", "[csv]") {
  TempDir dir;
  const std::string file = (dir / "data.csv").string();
  for (const auto& [description, content] : malformed_files()) {
    CAPTURE(description);
    const std::string whole = csv_error(dir, content);
    CHECK_THAT(whole, StartsWith(file + ":"));
    for (const std::size_t chunk_bytes : chunk_sizes()) {
      CAPTURE(chunk_bytes);
      CsvOptions options;
      options.chunk_bytes = chunk_bytes;
      CHECK_THAT(csv_error(dir, content, options), Equals(whole));
    }
  }
  SECTION("and they are the first errors of the file") {
    const Names expected = {
        ":3:3 (column 2 'b'): characters after the closing quote",
        ":3:4 (column 2 'b'): quote inside an unquoted field",
        ":2:5 (column 3 'y'): characters after the closing quote",
        ":6:3 (column 2 'b'): missing value '?' (CsvOptions::missing is error); fill it in with "
        "--missing mean|median|zero or leave the row out with --missing drop",
        ":3: expected 3 fields, found 2",
        ":3: blank line inside the data",
        ":4:5 (column 3 'y'): unterminated quote",
        ":4:3 (column 2 'y'): '1e40' is too large for a float",
    };
    for (std::size_t i = 0; i < expected.size(); ++i) {
      CAPTURE(malformed_files()[i].first);
      CHECK_THAT(csv_error(dir, malformed_files()[i].second), Equals(file + expected[i]));
    }
  }
}

namespace {

// A seeded file of a few MB: 16 numeric features in many spellings (short and long forms,
// exponents, signs, blanks, quotes), an ignored note with quotes and line breaks, and a text
// label; CRLF on some lines. `features` and `labels` receive what the reader must return.
std::string generated_csv(std::int64_t rows, std::vector<float>& features,
                          std::vector<std::string>& labels) {
  std::mt19937_64 bits(20240611);
  std::string text = "note";
  for (int c = 0; c < 16; ++c) text += ",f" + std::to_string(c);
  text += ",label\n";
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint64_t shape = bits();
    switch (shape % 5) {
      case 0:
        text += "plain";
        break;
      case 1:
        text += "\"with, comma\"";
        break;
      case 2:
        text += "\"two\nlines and \"\"quotes\"\"\"";
        break;
      case 3:
        text += "";
        break;
      default:
        text += "\"\"";
        break;
    }
    for (int c = 0; c < 16; ++c) {
      const std::uint64_t draw = bits();
      float value = 0.0f;
      std::string spelled;
      switch (draw % 8) {
        case 0:  // pixels
          value = static_cast<float>((draw >> 8) % 256);
          spelled = shortest(value);
          break;
        case 1:  // short decimals
          value =
              static_cast<float>(static_cast<std::int64_t>((draw >> 8) % 2000001) - 1000000) / 1e4f;
          spelled = shortest(value, std::chars_format::fixed);
          break;
        case 2:  // any float, shortest round-trip text
          value = shardprop::test::uniform_pm1(bits) * 1e6f;
          spelled = shortest(value);
          break;
        case 3:
          value = shardprop::test::uniform_pm1(bits) * 1e-20f;
          spelled = shortest(value, std::chars_format::scientific);
          break;
        case 4:  // blanks around
          value = shardprop::test::uniform_pm1(bits);
          spelled = ' ' + shortest(value);  // (GCC 12 warns wrongly on "literal" + string)
          spelled += '\t';
          break;
        case 5:  // quoted
          value = shardprop::test::uniform_pm1(bits) * 100.0f;
          spelled = '"' + shortest(value);
          spelled += '"';
          break;
        case 6:  // long integers
          value = static_cast<float>((draw >> 8) % 1000000000);
          spelled = std::to_string((draw >> 8) % 1000000000);
          break;
        default:
          value = -static_cast<float>((draw >> 8) % 100);
          spelled = shortest(value);
          break;
      }
      features.push_back(value);
      text += "," + spelled;
    }
    const std::uint64_t label = bits() % 7;
    labels.push_back(label == 6 ? "six, \"quoted\"" : "class " + std::to_string(label));
    text += label == 6 ? ",\"six, \"\"quoted\"\"\"" : ",class " + std::to_string(label);
    text += r % 3 == 0 ? "\r\n" : "\n";
  }
  return text;
}

}  // namespace

TEST_CASE("parallel parsing equals single-threaded parsing bit for bit", "[csv]") {
  TempDir dir;
  std::vector<float> features;
  std::vector<std::string> labels;
  write_text(dir / "data.csv", generated_csv(20000, features, labels));
  CsvOptions options;
  options.ignore = {"note"};

  Dataset single;
  {
    tbb::task_arena one(1);
    one.execute([&] { single = read_csv(dir / "data.csv", options); });
  }
  REQUIRE(single.rows == 20000);
  CHECK(single.feature_count == 16);
  // The values are the generated floats exactly.
  CHECK(same_bits(single.features, features));
  REQUIRE(single.class_names.size() == 7);
  for (std::size_t r = 0; r < labels.size(); ++r) {
    if (single.class_names[static_cast<std::size_t>(single.targets[r])] != labels[r]) {
      FAIL("row " << r << " has label " << labels[r]);
    }
  }

  const tbb::global_control allow_four(tbb::global_control::max_allowed_parallelism, 4);
  tbb::task_arena four(4);
  for (const std::size_t chunk_bytes :
       {std::size_t{4096}, std::size_t{65536}, std::size_t{1} << 20, options.chunk_bytes}) {
    CAPTURE(chunk_bytes);
    options.chunk_bytes = chunk_bytes;
    Dataset parallel;
    four.execute([&] { parallel = read_csv(dir / "data.csv", options); });
    check_identical(parallel, single);
  }
}

TEST_CASE("a bad value deep in a large file is reported identically in parallel", "[csv]") {
  TempDir dir;
  std::vector<float> features;
  std::vector<std::string> labels;
  std::string text = generated_csv(6000, features, labels);
  // Two bad values; the first in file order must win however the chunks are scheduled.
  const std::size_t late = text.rfind("\nplain,");
  const std::size_t early = text.find("\nplain,", text.size() / 3);
  REQUIRE(early < late);
  text.replace(late + 7, 0, "oops");
  text.replace(early + 7, 0, "bad");
  write_text(dir / "data.csv", text);
  const std::string file = (dir / "data.csv").string();

  CsvOptions options;
  options.ignore = {"note"};
  const std::string whole = thrown_message<shardprop::Error>([&] {
    tbb::task_arena one(1);
    one.execute([&] { read_csv(dir / "data.csv", options); });
  });
  const auto line =
      2 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(early), '\n');
  CHECK_THAT(whole, StartsWith(file + ":" + std::to_string(line) + ":7 (column 2 'f0'): "));
  CHECK_THAT(whole, Contains("bad"));

  const tbb::global_control allow_four(tbb::global_control::max_allowed_parallelism, 4);
  tbb::task_arena four(4);
  for (const std::size_t chunk_bytes : {std::size_t{1000}, std::size_t{65536}}) {
    CAPTURE(chunk_bytes);
    options.chunk_bytes = chunk_bytes;
    const std::string message = thrown_message<shardprop::Error>(
        [&] { four.execute([&] { read_csv(dir / "data.csv", options); }); });
    CHECK_THAT(message, Equals(whole));
  }
}
