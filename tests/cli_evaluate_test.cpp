// `shardprop evaluate` and `shardprop predict`, run as a user would: train → evaluate → predict
// round trips that must agree with each other, column rules for the input, one-line errors with
// their exit codes, and an --output that a failed run leaves as it was.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/model.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;
using shardprop::test::Args;
using shardprop::test::directory_entries;
using shardprop::test::lines_of;
using shardprop::test::read_text;
using shardprop::test::Run;
using shardprop::test::run_cli;
using shardprop::test::separable_csv;
using shardprop::test::TempDir;
using shardprop::test::write_text;

std::vector<std::string> fields_of(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  for (std::string field; std::getline(in, field, ',');) fields.push_back(field);
  return fields;
}

// Rows of `csv` (after the header), one vector of fields each.
std::vector<std::vector<std::string>> rows_of(const std::string& csv) {
  std::vector<std::vector<std::string>> rows;
  const std::vector<std::string> lines = lines_of(csv);
  for (std::size_t i = 1; i < lines.size(); ++i) rows.push_back(fields_of(lines[i]));
  return rows;
}

// The columns of a CSV text in another order: `order` lists old column indices.
std::string reorder_columns(const std::string& csv, const std::vector<std::size_t>& order) {
  std::string out;
  for (const std::string& line : lines_of(csv)) {
    const std::vector<std::string> fields = fields_of(line);
    for (std::size_t i = 0; i < order.size(); ++i) {
      out += (i > 0 ? "," : "") + fields[order[i]];
    }
    out += '\n';
  }
  return out;
}

// y = 2·x1 − x2 + 0.5 plus a little noise; the target in the middle column.
std::string regression_csv(std::uint64_t seed, int rows) {
  std::mt19937_64 bits(seed);
  std::string csv = "x1,y,x2\n";
  char line[96];
  for (int r = 0; r < rows; ++r) {
    const float x1 = shardprop::test::uniform_pm1(bits);
    const float x2 = shardprop::test::uniform_pm1(bits);
    const float noise = 0.01f * shardprop::test::uniform_pm1(bits);
    std::snprintf(line, sizeof line, "%.6f,%.6f,%.6f\n", static_cast<double>(x1),
                  static_cast<double>(2.0f * x1 - x2 + 0.5f + noise), static_cast<double>(x2));
    csv += line;
  }
  return csv;
}

// A directory with a trained classifier (m.st, on train.csv) and a test file (test.csv).
struct TrainedClassifier {
  TempDir dir;
  TrainedClassifier() {
    write_text(dir / "train.csv", separable_csv(11, 256));
    write_text(dir / "test.csv", separable_csv(12, 200));
    const Run train = run_cli(dir, {"train", "--data", "train.csv", "--layers", "8", "--epochs",
                                    "15", "--lr", "0.3", "--batch-size", "16", "--out", "m.st"});
    INFO(train.err);
    REQUIRE(train.exit_code == 0);
  }
  nlohmann::json evaluate_json(const std::string& data = "test.csv", const Args& extra = {}) const {
    Args args{"evaluate", "--model", "m.st", "--data", data, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const Run run = run_cli(dir, args);
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    return nlohmann::json::parse(run.out);
  }
};

void require_one_line_error(const Run& run, int exit_code, const std::string& what) {
  CAPTURE(run.out, run.err);
  CHECK(run.exit_code == exit_code);
  CHECK_THAT(run.err, StartsWith("shardprop: error: "));
  CHECK_THAT(run.err, Contains(what));
  CHECK(lines_of(run.err).size() == 1);
}

}  // namespace

TEST_CASE("evaluate and predict agree on a trained classifier", "[cli][evaluate]") {
  TrainedClassifier f;
  const nlohmann::json report = f.evaluate_json();
  REQUIRE(report["rows"] == 200);
  CHECK(report["loss"] == "xent");
  CHECK(report["targets"] == nlohmann::json{"label"});  // from the model's metadata
  std::int64_t total = 0;
  for (const auto& row : report["confusion"]) {
    for (const auto& count : row) total += count.get<std::int64_t>();
  }
  CHECK(total == 200);
  CHECK(report["accuracy"].get<double>() > 0.9);

  SECTION("predict's class names give evaluate's accuracy") {
    const Run run =
        run_cli(f.dir, {"predict", "--model", "m.st", "--data", "test.csv", "--output", "out.csv"});
    INFO(run.err);
    REQUIRE(run.exit_code == 0);
    CHECK_THAT(run.out, Contains("wrote 200 predictions to out.csv"));
    const std::string out = read_text(f.dir / "out.csv");
    CHECK(lines_of(out).front() == "label");
    const auto predicted = rows_of(out);
    const auto truth = rows_of(read_text(f.dir / "test.csv"));
    REQUIRE(predicted.size() == 200);
    int right = 0;
    for (std::size_t r = 0; r < truth.size(); ++r) right += predicted[r][0] == truth[r][2] ? 1 : 0;
    CHECK(static_cast<double>(right) / 200.0 == report["accuracy"].get<double>());
  }
  SECTION("probabilities sum to 1 and the first column is their largest") {
    const Run run = run_cli(f.dir, {"predict", "--model", "m.st", "--data", "test.csv", "--output",
                                    "p.csv", "--probabilities"});
    REQUIRE(run.exit_code == 0);
    const std::string out = read_text(f.dir / "p.csv");
    CHECK(lines_of(out).front() == "label,0,1");
    for (const auto& row : rows_of(out)) {
      REQUIRE(row.size() == 3);
      const double p0 = std::strtod(row[1].c_str(), nullptr);
      const double p1 = std::strtod(row[2].c_str(), nullptr);
      CHECK_THAT(p0 + p1, WithinAbs(1.0, 1e-6));
      CHECK(row[0] == (p1 > p0 ? "1" : "0"));
    }
  }
  SECTION("the input's column order does not matter, nor extra columns") {
    std::string with_id;
    int line = 0;
    for (const std::string& text : lines_of(read_text(f.dir / "test.csv"))) {
      with_id += text + "," + (line++ == 0 ? std::string("id") : std::to_string(line)) + "\n";
    }
    // id, label, x2, x1
    write_text(f.dir / "shuffled.csv", reorder_columns(with_id, {3, 2, 1, 0}));
    REQUIRE(
        run_cli(f.dir, {"predict", "--model", "m.st", "--data", "test.csv", "--output", "a.csv"})
            .exit_code == 0);
    REQUIRE(run_cli(f.dir,
                    {"predict", "--model", "m.st", "--data", "shuffled.csv", "--output", "b.csv"})
                .exit_code == 0);
    CHECK(read_text(f.dir / "a.csv") == read_text(f.dir / "b.csv"));
    nlohmann::json shuffled = f.evaluate_json("shuffled.csv");
    shuffled["data"] = report["data"];
    CHECK(shuffled == report);
  }
  SECTION("without a header the first columns are the features, by position") {
    const std::vector<std::string> lines = lines_of(read_text(f.dir / "test.csv"));
    std::string body;
    for (std::size_t i = 1; i < lines.size(); ++i) body += lines[i] + "\n";
    write_text(f.dir / "plain.csv", body);
    REQUIRE(
        run_cli(f.dir, {"predict", "--model", "m.st", "--data", "test.csv", "--output", "a.csv"})
            .exit_code == 0);
    REQUIRE(run_cli(f.dir, {"predict", "--model", "m.st", "--data", "plain.csv", "--no-header",
                            "--output", "b.csv"})
                .exit_code == 0);
    CHECK(read_text(f.dir / "a.csv") == read_text(f.dir / "b.csv"));
    CHECK(f.evaluate_json("plain.csv", {"--no-header"})["accuracy"] == report["accuracy"]);
  }
  SECTION("the same report for any thread count") {
    CHECK(f.evaluate_json("test.csv", {"--threads", "1"}) ==
          f.evaluate_json("test.csv", {"--threads", "3"}));
  }
  SECTION("the human report names the classes in a table and the confusion matrix") {
    const Run run = run_cli(f.dir, {"evaluate", "--model", "m.st", "--data", "test.csv"});
    REQUIRE(run.exit_code == 0);
    const std::vector<std::string> lines = lines_of(run.out);
    REQUIRE(lines.size() == 8);
    CHECK_THAT(lines[0], StartsWith("test.csv: 200 rows, loss "));
    CHECK_THAT(lines[0], Contains("(xent), accuracy "));
    CHECK_THAT(lines[1], Contains("precision") && Contains("recall") && Contains("support"));
    CHECK_THAT(lines[4], StartsWith("confusion matrix (rows: true class, columns: predicted)"));
    const std::int64_t support0 = report["classes"][0]["support"].get<std::int64_t>();
    CHECK_THAT(lines[2], StartsWith("0 ") && Contains(std::to_string(support0)));
  }
}

TEST_CASE("a regression model round-trips through evaluate and predict", "[cli][evaluate]") {
  TempDir dir;
  write_text(dir / "train.csv", regression_csv(1, 400));
  write_text(dir / "test.csv", regression_csv(2, 150));
  // The target is the middle column: evaluate must find it from the metadata, not by position.
  const Run train = run_cli(
      dir, {"train", "--data", "train.csv", "--loss", "mse", "--target", "y", "--layers", "8",
            "--activation", "tanh", "--epochs", "40", "--lr", "0.05", "--out", "m.st"});
  INFO(train.err);
  REQUIRE(train.exit_code == 0);
  const Run evaluate =
      run_cli(dir, {"evaluate", "--model", "m.st", "--data", "test.csv", "--json"});
  INFO(evaluate.err);
  REQUIRE(evaluate.exit_code == 0);
  const nlohmann::json report = nlohmann::json::parse(evaluate.out);
  CHECK(report["targets"] == nlohmann::json{"y"});
  CHECK(report["r2"].get<double>() > 0.98);

  const Run predict =
      run_cli(dir, {"predict", "--model", "m.st", "--data", "test.csv", "--output", "out.csv"});
  REQUIRE(predict.exit_code == 0);
  const std::string out = read_text(dir / "out.csv");
  CHECK(lines_of(out).front() == "y");
  // RMSE and MAE recomputed from the printed predictions equal the report's: the numbers are
  // printed so that they read back to the same floats.
  const auto predicted = rows_of(out);
  const auto truth = rows_of(read_text(dir / "test.csv"));
  REQUIRE(predicted.size() == truth.size());
  double squared = 0.0;
  double absolute = 0.0;
  for (std::size_t r = 0; r < truth.size(); ++r) {
    const double y = std::strtof(predicted[r][0].c_str(), nullptr);
    const double t = std::strtof(truth[r][1].c_str(), nullptr);
    squared += (y - t) * (y - t);
    absolute += std::fabs(y - t);
  }
  const auto n = static_cast<double>(truth.size());
  CHECK_THAT(std::sqrt(squared / n), WithinRel(report["rmse"].get<double>(), 1e-9));
  CHECK_THAT(absolute / n, WithinRel(report["mae"].get<double>(), 1e-9));

  const Run human = run_cli(dir, {"evaluate", "--model", "m.st", "--data", "test.csv"});
  CHECK_THAT(human.out, StartsWith("test.csv: 150 rows, loss ") && Contains("(mse), rmse ") &&
                            Contains(", r2 0.9"));
}

TEST_CASE("evaluate and predict report bad input in one line with exit status 1",
          "[cli][evaluate]") {
  TrainedClassifier f;
  SECTION("a missing feature column") {
    write_text(f.dir / "in.csv", "id,x1\n1,0.5\n");
    require_one_line_error(
        run_cli(f.dir, {"predict", "--model", "m.st", "--data", "in.csv", "--output", "o.csv"}), 1,
        "in.csv: the feature column 'x2' is missing from the header");
  }
  SECTION("a label the model never saw, with file and line") {
    write_text(f.dir / "in.csv", "x1,x2,label\n0.1,0.2,0\n0.3,0.1,1\n0.5,0.5,7\n");
    require_one_line_error(
        run_cli(f.dir, {"evaluate", "--model", "m.st", "--data", "in.csv"}), 1,
        "in.csv:4:9 (column 3 'label'): class label '7' is not one of the 2 known classes");
  }
  SECTION("a target column that is not there") {
    require_one_line_error(
        run_cli(f.dir, {"evaluate", "--model", "m.st", "--data", "test.csv", "--target", "colour"}),
        1, "no column named 'colour'");
  }
  SECTION("a truncated model file") {
    const std::string bytes = read_text(f.dir / "m.st");
    write_text(f.dir / "cut.st", bytes.substr(0, bytes.size() - 10));
    for (const char* command : {"evaluate", "predict"}) {
      CAPTURE(command);
      Args args{command, "--model", "cut.st", "--data", "test.csv"};
      if (std::string(command) == "predict") args.insert(args.end(), {"--output", "o.csv"});
      require_one_line_error(run_cli(f.dir, args), 1, "cut.st: ");
    }
  }
  SECTION("metadata that does not fit the model names the key") {
    const shardprop::Model model = shardprop::load_model(f.dir / "m.st");
    std::map<std::string, std::string> metadata =
        shardprop::read_safetensors_metadata(f.dir / "m.st");
    metadata["shardprop.classes"] = R"(["only one"])";
    shardprop::save_safetensors(model, f.dir / "odd.st", metadata);
    require_one_line_error(run_cli(f.dir, {"evaluate", "--model", "odd.st", "--data", "test.csv"}),
                           1, "odd.st: metadata 'shardprop.classes': 1 names, expected 2");
  }
  SECTION("--probabilities for a regression model") {
    write_text(f.dir / "r.csv", regression_csv(3, 50));
    REQUIRE(run_cli(f.dir,
                    {"train", "--data", "r.csv", "--loss", "mse", "--epochs", "1", "--out", "r.st"})
                .exit_code == 0);
    require_one_line_error(run_cli(f.dir, {"predict", "--model", "r.st", "--data", "r.csv",
                                           "--output", "o.csv", "--probabilities"}),
                           1, "probabilities need a classifier");
  }
}

TEST_CASE("a failed predict leaves an existing --output untouched and no temporary file",
          "[cli][evaluate]") {
  TrainedClassifier f;
  write_text(f.dir / "out.csv", "precious\n");
  // A bad value far into the file: the temporary output already holds its header then.
  std::string csv = separable_csv(5, 3000);
  csv += "0.5,oops,1\n";
  write_text(f.dir / "bad.csv", csv);
  const std::vector<std::string> before = directory_entries(f.dir.path());
  const Run run =
      run_cli(f.dir, {"predict", "--model", "m.st", "--data", "bad.csv", "--output", "out.csv"});
  require_one_line_error(run, 1, "bad.csv:3002:");
  CHECK(read_text(f.dir / "out.csv") == "precious\n");
  CHECK(directory_entries(f.dir.path()) == before);
}

TEST_CASE("usage errors of evaluate and predict exit with status 2", "[cli][evaluate]") {
  TempDir dir;
  write_text(dir / "d.csv", separable_csv(1, 10));
  using Row = std::tuple<std::string, Args>;
  const auto [what, args] = GENERATE(table<std::string, Args>({
      Row{"predict without --output", Args{"predict", "--model", "d.csv", "--data", "d.csv"}},
      Row{"evaluate without --model", Args{"evaluate", "--data", "d.csv"}},
      Row{"a model file that does not exist",
          Args{"evaluate", "--model", "none.st", "--data", "d.csv"}},
      Row{"an unknown option",
          Args{"predict", "--model", "d.csv", "--data", "d.csv", "--output", "o.csv", "--colour"}},
      Row{"negative threads",
          Args{"evaluate", "--model", "d.csv", "--data", "d.csv", "--threads", "-1"}},
      Row{"info without a file", Args{"info"}},
  }));
  CAPTURE(what);
  const Run run = run_cli(dir, args);
  CAPTURE(run.err);
  CHECK(run.exit_code == 2);
  // One error line in the documented format, then one hint naming the subcommand's --help.
  const std::vector<std::string> err = lines_of(run.err);
  REQUIRE(err.size() == 2);
  CHECK_THAT(err[0], StartsWith("shardprop: error: "));
  CHECK(err[1] == "Run 'shardprop " + args.front() + " --help' for the options.");
  CHECK(directory_entries(dir.path()) == std::vector<std::string>{"d.csv"});
}
