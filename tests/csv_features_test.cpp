// Reading a CSV by an explicit feature list (a trained model's columns, in its order) and without
// a target (prediction input), whole or streamed.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;
using Catch::Matchers::Equals;

TEST_CASE("listed feature columns are read in the list's order and other columns are skipped",
          "[csv]") {
  test::TempDir dir;
  const auto file = dir / "d.csv";
  test::write_text(file, "id,b,label,a\n7,2,yes,1\n8,4,no,3\n");
  CsvOptions options;
  options.features = {"a", "b"};
  options.targets = {"label"};
  options.target_kind = TargetKind::classes;
  const bool streamed = GENERATE(false, true);
  CAPTURE(streamed);
  Dataset d;
  if (streamed) {
    CsvStream stream(file, options, {"no", "yes"});
    REQUIRE(stream.next(d));
  } else {
    d = read_csv(file, options);
  }
  CHECK(d.feature_names == std::vector<std::string>{"a", "b"});
  CHECK(d.features == std::vector<float>{1, 2, 3, 4});
  CHECK(d.targets == std::vector<float>{1, 0});
}

TEST_CASE("a read without a target gives rows of features only", "[csv]") {
  test::TempDir dir;
  CsvOptions options;
  options.no_target = true;
  SECTION("by name, ignoring an id and the target") {
    test::write_text(dir / "d.csv", "x2,id,x1,label\n0.5,1,1.5,cat\n-1,2,2,dog\n");
    options.features = {"x1", "x2"};
    const Dataset d = read_csv(dir / "d.csv", options);
    CHECK(d.target_width == 0);
    CHECK(d.targets.empty());
    CHECK(d.rows == 2);
    CHECK(d.features == std::vector<float>{1.5f, 0.5f, 2, -1});
  }
  SECTION("a single column without a header, streamed") {
    test::write_text(dir / "d.csv", "1\n2\n3\n");
    options.header = false;
    options.features = {"0"};
    CsvStream stream(dir / "d.csv", options);
    Dataset d;
    REQUIRE(stream.next(d));
    CHECK(d.features == std::vector<float>{1, 2, 3});
    CHECK(d.target_width == 0);
  }
  SECTION("target columns as well are an error") {
    test::write_text(dir / "d.csv", "a,b\n1,2\n");
    options.targets = {"b"};
    CHECK_THROWS_WITH(read_csv(dir / "d.csv", options), Contains("without a target"));
  }
}

TEST_CASE("a listed feature that is missing or clashes is an error naming it and the file",
          "[csv]") {
  test::TempDir dir;
  const auto file = dir / "d.csv";
  const std::string name = file.string();
  test::write_text(file, "a,b,c\n1,2,3\n");
  CsvOptions options;
  SECTION("missing") {
    options.features = {"a", "z"};
    CHECK_THAT(test::thrown_message<Error>([&] { read_csv(file, options); }),
               Equals(name + ": the feature column 'z' is missing from the header"));
    auto stream_first_block = [&] {
      CsvStream stream(file, options);
      Dataset block;
      stream.next(block);
    };
    CHECK_THROWS_WITH(stream_first_block(),
                      Equals(name + ": the feature column 'z' is missing from the header"));
  }
  SECTION("an index out of range") {
    options.header = false;
    options.no_target = true;
    options.features = {"0", "3"};
    CHECK_THROWS_WITH(read_csv(file, options),
                      Equals(name + ": feature column index 3 is out of range (3 columns)"));
  }
  SECTION("also the target") {
    options.features = {"a", "c"};
    CHECK_THROWS_WITH(read_csv(file, options),
                      Contains("column 3 'c' is both a target and a feature"));
  }
  SECTION("listed twice") {
    options.features = {"a", "a"};
    CHECK_THROWS_WITH(read_csv(file, options), Contains("listed twice as a feature"));
  }
}
