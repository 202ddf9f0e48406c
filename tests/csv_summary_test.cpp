// summarize_csv and `shardprop inspect`: each column's type, missing count, min/mean/max and
// categories against hand-computed values, whatever the block and chunk sizes; read_csv's
// messages for bad files; the table and the JSON of the command.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli_runner.hpp"
#include "data/csv_summary.hpp"
#include "shardprop/csv_summary.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
using Catch::Matchers::WithinRel;
using shardprop::CsvColumnSummary;
using shardprop::CsvColumnType;
using shardprop::CsvOptions;
using shardprop::CsvSummary;
using shardprop::Error;
using shardprop::test::Run;
using shardprop::test::run_cli;
using shardprop::test::TempDir;
using shardprop::test::write_text;

using Top = std::vector<std::pair<std::string, std::int64_t>>;

// Every column type, missing cells (empty and NA), a quoted category holding the delimiter, a
// comment line between records.
constexpr const char* kFile =
    "# made by hand\n"
    "id,height,colour,blank,y\n"
    "1,1.5,red,,0\n"
    "2,NA,blue,,1\n"
    "# between records\n"
    "3,2.5,red,NA,1\n"
    "-4,3,\"green, light\", ,0\n";

std::string message_of(const std::function<void()>& work) {
  try {
    work();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("summarize_csv gives hand-computed statistics at every block and chunk size",
          "[csv][inspect]") {
  TempDir dir;
  write_text(dir / "data.csv", kFile);
  CsvOptions options;
  options.comment = '#';
  options.chunk_bytes = GENERATE(std::size_t{1}, std::size_t{9}, std::size_t{4} << 20);
  const std::size_t block = GENERATE(std::size_t{1}, std::size_t{20}, std::size_t{1} << 20);
  CAPTURE(options.chunk_bytes, block);
  const CsvSummary summary = shardprop::detail::summarize_csv(dir / "data.csv", options, block);

  CHECK(summary.rows == 4);
  REQUIRE(summary.columns.size() == 5);
  CHECK(summary.target == 4);
  const CsvColumnSummary& id = summary.columns[0];
  CHECK(id.name == "id");
  CHECK(id.type == CsvColumnType::integer);
  CHECK(id.missing == 0);
  CHECK(id.min == -4.0);
  CHECK(id.max == 3.0);
  CHECK(id.mean == 0.5);  // (1 + 2 + 3 - 4) / 4
  CHECK(id.distinct == 4);
  CHECK_FALSE(id.target);

  const CsvColumnSummary& height = summary.columns[1];
  CHECK(height.type == CsvColumnType::number);
  CHECK(height.missing == 1);
  CHECK(height.min == 1.5);
  CHECK(height.max == 3.0);
  CHECK_THAT(height.mean, WithinRel(7.0 / 3.0, 1e-12));
  CHECK(height.distinct == 3);

  const CsvColumnSummary& colour = summary.columns[2];
  CHECK(colour.type == CsvColumnType::text);
  CHECK(colour.missing == 0);
  CHECK(colour.distinct == 3);
  CHECK(colour.top == Top{{"red", 2}, {"blue", 1}, {"green, light", 1}});

  const CsvColumnSummary& blank = summary.columns[3];
  CHECK(blank.type == CsvColumnType::empty);
  CHECK(blank.missing == 4);  // two empty fields, NA, and a field of one blank
  CHECK(blank.distinct == 0);

  const CsvColumnSummary& y = summary.columns[4];
  CHECK(y.type == CsvColumnType::integer);
  CHECK(y.target);
  CHECK(y.top == Top{{"0", 2}, {"1", 2}});
}

TEST_CASE("summarize_csv options: target, no header, skipped rows, NA texts", "[csv][inspect]") {
  TempDir dir;
  const auto path = dir / "data.csv";
  write_text(path, kFile);
  CsvOptions options;
  options.comment = '#';

  SECTION("a named target") {
    options.targets = {"colour"};
    const CsvSummary summary = shardprop::summarize_csv(path, options);
    CHECK(summary.target == 2);
    CHECK(summary.columns[2].target);
    CHECK_FALSE(summary.columns[4].target);
  }
  SECTION("no target") {
    options.no_target = true;
    CHECK(shardprop::summarize_csv(path, options).target == -1);
  }
  SECTION("other NA texts") {
    options.na_values = {"red"};
    const CsvSummary summary = shardprop::summarize_csv(path, options);
    CHECK(summary.columns[2].missing == 2);
    CHECK(summary.columns[2].distinct == 2);
    CHECK(summary.columns[3].type == CsvColumnType::text);  // NA is a text now
    CHECK(summary.columns[3].missing == 0);
    CHECK(summary.columns[1].type == CsvColumnType::text);
  }
  SECTION("no header, skipped rows") {
    options.header = false;
    options.skip_rows = 2;
    const CsvSummary summary = shardprop::summarize_csv(path, options);
    CHECK(summary.rows == 4);
    CHECK(summary.columns[0].name == "0");
    CHECK(summary.columns[0].mean == 0.5);
  }
}

TEST_CASE("summarize_csv counts distinct texts up to its bound", "[csv][inspect]") {
  TempDir dir;
  const auto path = dir / "data.csv";
  const int extra = GENERATE(0, 1);
  const std::int64_t values = shardprop::kCsvSummaryMaxDistinct + extra;
  std::string text = "v,y\n";
  for (std::int64_t i = 0; i < values; ++i) {
    text += 'v';  // not "v" + ...: GCC 12 warns on that (-Wrestrict)
    text += std::to_string(i);
    text += ",1\n";
  }
  text += "v7,1\n";
  write_text(path, text);
  CsvOptions options;
  options.chunk_bytes = 100;
  const CsvSummary summary = shardprop::detail::summarize_csv(path, options, 1000);
  CHECK(summary.rows == values + 1);
  if (values == shardprop::kCsvSummaryMaxDistinct) {
    CHECK_FALSE(summary.columns[0].distinct_exceeded);
    CHECK(summary.columns[0].distinct == values);
    CHECK(summary.columns[0].top.front() == std::pair<std::string, std::int64_t>{"v7", 2});
  } else {
    CHECK(summary.columns[0].distinct_exceeded);
    CHECK(summary.columns[0].top.empty());
  }
  CHECK(summary.columns[1].distinct == 1);
}

TEST_CASE("summarize_csv reports bad files as read_csv does", "[csv][inspect]") {
  TempDir dir;
  const auto path = dir / "data.csv";
  const std::string file = path.string();
  CsvOptions options;
  options.comment = '#';
  const std::size_t block = GENERATE(std::size_t{1}, std::size_t{1} << 20);
  options.chunk_bytes = GENERATE(std::size_t{1}, std::size_t{4} << 20);
  auto summarize = [&] { shardprop::detail::summarize_csv(path, options, block); };

  write_text(path, "x,y\n1,2\n#c\n3\n4,5\n");
  CHECK_THAT(message_of(summarize), Equals(file + ":4: expected 2 fields, found 1"));
  write_text(path, "x,y\n1,2\n3,\"a\"b\n");
  CHECK_THAT(message_of(summarize),
             Equals(file + ":3:3 (column 2 'y'): characters after the closing quote"));
  write_text(path, "x,y\n1,2\n\n3,4\n");
  CHECK_THAT(message_of(summarize), Equals(file + ":3: blank line inside the data"));
  write_text(path, "x,y\n1,2\n#\"\n3,4\n");
  CHECK_THAT(message_of(summarize), Contains(file + ":3: comment line holds an unbalanced quote"));
  write_text(path, "x,y\n1,2\n");
  options.targets = {"z"};
  CHECK_THAT(message_of(summarize), Equals(file + ": no column named 'z' in the header"));
}

TEST_CASE("shardprop inspect prints a table and JSON", "[cli][inspect]") {
  TempDir dir;
  write_text(dir / "data.csv", kFile);

  SECTION("table") {
    const Run run = run_cli(dir, {"inspect", "data.csv", "--comment", "#"});
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Contains("data.csv: 4 rows, 5 columns; target: column 5 'y'\n"
                                 "train --loss auto: xent (the target holds 2 integer values)\n"));
    CHECK_THAT(run.out,
               Contains("column  name    type     missing  min     mean  max  distinct  top "
                        "categories\n"
                        "     1  id      integer        0   -4      0.5    3         4\n"
                        "     2  height  number         1  1.5  2.33333    3         3\n"
                        "     3  colour  text           0                            3  'red' 2, "
                        "'blue' 1, 'green, light' 1\n"
                        "     4  blank   empty          4                            0\n"
                        "   5 *  y       integer        0    0      0.5    1         2\n"));
  }
  SECTION("JSON") {
    const Run run =
        run_cli(dir, {"inspect", "data.csv", "--comment", "#", "--target", "colour", "--json"});
    REQUIRE(run.exit_code == 0);
    const nlohmann::json j = nlohmann::json::parse(run.out);
    CHECK(j["rows"] == 4);
    CHECK(j["target"] == 2);
    CHECK(j["columns"][2]["type"] == "text");
    CHECK(j["columns"][2]["top"][0]["value"] == "red");
    CHECK(j["columns"][2]["top"][0]["count"] == 2);
    CHECK(j["columns"][1]["missing"] == 1);
    CHECK(j["columns"][0]["mean"] == 0.5);
    CHECK(j["columns"][3]["type"] == "empty");
    CHECK(j["auto_loss"]["loss"] == "xent");
    CHECK(j["auto_loss"]["reason"] == "the target holds labels");
  }
  SECTION("what keeps the first rows from choosing a loss") {
    const Run run = run_cli(dir, {"inspect", "data.csv", "--comment", "#", "--target", "blank"});
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Contains("train --loss auto: cannot tell from the first rows ("));
    CHECK_THAT(run.out, Contains("missing"));
  }
  SECTION("NA texts and skipped rows") {
    const Run run = run_cli(dir, {"inspect", "data.csv", "--skip-rows", "1", "--comment", "#",
                                  "--na-values", ",NA,red", "--json"});
    REQUIRE(run.exit_code == 0);
    const nlohmann::json j = nlohmann::json::parse(run.out);
    CHECK(j["columns"][2]["missing"] == 2);
    CHECK(j["columns"][3]["missing"] == 4);
  }
  SECTION("errors") {
    Run run = run_cli(dir, {"inspect", "data.csv"});
    CHECK(run.exit_code == 1);
    CHECK_THAT(run.err, Contains("data.csv:1: the header has 1 column"));
    run = run_cli(dir, {"inspect", "data.csv", "--skip-rows", "-1"});
    CHECK(run.exit_code == 2);
    run = run_cli(dir, {"inspect", "data.csv", "--comment", "ab"});
    CHECK(run.exit_code == 2);
    CHECK_THAT(run.err, Contains("one character"));
  }
}

TEST_CASE("train, evaluate and predict skip preambles and comments", "[cli][preamble]") {
  TempDir dir;
  std::string clean = "a,b,y\n";
  std::string noisy = "exported 2026\n\"rows\", 40\n# columns follow\na,b,y\n";
  for (int i = 0; i < 40; ++i) {
    const std::string row = std::to_string(i % 7) + "," + std::to_string((i * 3) % 5) + "," +
                            std::to_string(i % 2) + "\n";
    clean += row;
    noisy += row;
    if (i % 9 == 0) noisy += "# a note, with \"quotes\"\n";
  }
  write_text(dir / "clean.csv", clean);
  write_text(dir / "noisy.csv", noisy);
  const std::vector<std::string> common = {"--layers", "4", "--epochs", "2",   "--batch-size", "8",
                                           "--seed",   "3", "--loss",   "xent"};
  std::vector<std::string> train_clean = {"train", "--data", "clean.csv", "--out", "clean.st"};
  std::vector<std::string> train_noisy = {"train",       "--data", "noisy.csv", "--out", "noisy.st",
                                          "--skip-rows", "2",      "--comment", "#"};
  train_clean.insert(train_clean.end(), common.begin(), common.end());
  train_noisy.insert(train_noisy.end(), common.begin(), common.end());
  REQUIRE(run_cli(dir, train_clean).exit_code == 0);
  const Run trained = run_cli(dir, train_noisy);
  REQUIRE(trained.exit_code == 0);

  const Run predict_clean =
      run_cli(dir, {"predict", "--model", "clean.st", "--data", "clean.csv", "--output", "1.csv"});
  const Run predict_noisy =
      run_cli(dir, {"predict", "--model", "noisy.st", "--data", "noisy.csv", "--output", "2.csv",
                    "--skip-rows", "2", "--comment", "#"});
  REQUIRE(predict_clean.exit_code == 0);
  REQUIRE(predict_noisy.exit_code == 0);
  CHECK(shardprop::test::read_text(dir / "1.csv") == shardprop::test::read_text(dir / "2.csv"));

  const Run evaluate_clean =
      run_cli(dir, {"evaluate", "--model", "clean.st", "--data", "clean.csv", "--json"});
  const Run evaluate_noisy = run_cli(dir, {"evaluate", "--model", "noisy.st", "--data", "noisy.csv",
                                           "--json", "--skip-rows", "2", "--comment", "#"});
  REQUIRE(evaluate_clean.exit_code == 0);
  REQUIRE(evaluate_noisy.exit_code == 0);
  CHECK(nlohmann::json::parse(evaluate_clean.out)["metrics"] ==
        nlohmann::json::parse(evaluate_noisy.out)["metrics"]);

  const Run without =
      run_cli(dir, {"predict", "--model", "noisy.st", "--data", "noisy.csv", "--output", "3.csv"});
  CHECK(without.exit_code == 1);
  CHECK_FALSE(std::filesystem::exists(dir / "3.csv"));
}
