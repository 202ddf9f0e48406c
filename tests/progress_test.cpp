// What `shardprop train` prints while training (the epoch line, the live bar on a terminal, the
// verbosity levels) and the --metrics JSON Lines file. Output goes to memory streams and the
// clock is a fake one, so nothing here depends on timing.
#include <stdio.h>  // open_memstream

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "metrics_log.hpp"
#include "progress.hpp"
#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;
using shardprop::cli::EpochSummary;
using shardprop::cli::format_epoch_line;
using shardprop::cli::format_progress_bar;
using shardprop::cli::MetricsLog;
using shardprop::cli::ProgressReporter;
using shardprop::cli::Verbosity;
using shardprop::test::read_text;
using shardprop::test::TempDir;
using shardprop::test::write_text;
using Clock = std::chrono::steady_clock;

// A FILE* whose output stays in memory.
class MemoryOutput {
 public:
  MemoryOutput() : file_(open_memstream(&data_, &size_)) {
    if (file_ == nullptr) throw std::runtime_error("open_memstream failed");
  }
  ~MemoryOutput() {
    std::fclose(file_);
    std::free(data_);
  }
  MemoryOutput(const MemoryOutput&) = delete;
  MemoryOutput& operator=(const MemoryOutput&) = delete;

  std::FILE* file() const { return file_; }
  std::string text() {
    std::fflush(file_);
    return {data_, size_};
  }

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::FILE* file_;
};

// A clock that moves only when told to.
struct FakeClock {
  Clock::time_point now{};
  void advance(std::chrono::milliseconds step) { now += step; }
  shardprop::cli::ProgressClock function() {
    return [this] { return now; };
  }
};

EpochSummary classification_summary(int epoch) {
  EpochSummary s;
  s.epoch = epoch;
  s.epochs = 6;
  s.train_loss = 0.5 / epoch;
  s.accuracy = 0.8 + 0.01 * epoch;
  s.samples_per_second = 12345.4;
  s.epoch_seconds = 0.4;
  s.elapsed_seconds = 0.41 * epoch;
  s.learning_rate = 0.1;
  s.gradient_norm = 2.5;
  return s;
}

// The pieces of terminal output between "\r" and "\n", without the clear-to-end-of-line codes:
// what the user sees on each redraw.
std::vector<std::string> drawn_lines(const std::string& output) {
  std::vector<std::string> lines;
  std::string current;
  for (std::size_t i = 0; i < output.size(); ++i) {
    if (output.compare(i, 3, "\033[K") == 0) {
      i += 2;
    } else if (output[i] == '\r' || output[i] == '\n') {
      if (!current.empty()) lines.push_back(current);
      current.clear();
    } else {
      current += output[i];
    }
  }
  if (!current.empty()) lines.push_back(current);
  return lines;
}

std::size_t count_of(const std::string& text, char c) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), c));
}

}  // namespace

TEST_CASE("the epoch line keeps the format train has always printed", "[cli][progress]") {
  SECTION("training data only, classification: the format the CLI tests parse") {
    const std::string line = format_epoch_line(classification_summary(3), Verbosity::normal);
    CHECK(line == "epoch    3/6  loss 0.166667  accuracy  83.00%  12345 samples/s  1.23 s");
    std::smatch match;
    REQUIRE(std::regex_match(
        line, match, std::regex(R"(^epoch +(\d+)/6 +loss (\d+\.\d+) +accuracy +(\d+\.\d+)%.*)")));
    CHECK(match[1] == "3");
    CHECK(match[3] == "83.00");
  }
  SECTION("each combination of validation and regression") {
    const auto [has_validation, regression, expected] = GENERATE(table<bool, bool, std::string>({
        {true, false,
         "epoch    3/10  loss 0.123456  val loss 0.234567  val accuracy  91.25%  12345 "
         "samples/s  1.23 s"},
        {false, true, "epoch    3/10  loss 0.123456  rmse 0.345678  12345 samples/s  1.23 s"},
        {true, true,
         "epoch    3/10  loss 0.123456  val loss 0.234567  val rmse 0.345678  12345 samples/s  "
         "1.23 s"},
        {false, false, "epoch    3/10  loss 0.123456  accuracy  91.25%  12345 samples/s  1.23 s"},
    }));
    CAPTURE(has_validation, regression);
    EpochSummary s;
    s.epoch = 3;
    s.epochs = 10;
    s.train_loss = 0.123456;
    s.has_validation = has_validation;
    s.validation_loss = 0.234567;
    s.regression = regression;
    s.accuracy = 0.9125;
    s.rmse = 0.345678;
    s.samples_per_second = 12345;
    s.elapsed_seconds = 1.234;
    s.learning_rate = 0.05;
    CHECK(format_epoch_line(s, Verbosity::normal) == expected);
  }
  SECTION("the restart prefix appears only with more than one restart") {
    EpochSummary s = classification_summary(2);
    s.restart = 1;
    s.restarts = 1;
    CHECK_THAT(format_epoch_line(s, Verbosity::normal), !Contains("restart"));
    s.restarts = 3;
    CHECK_THAT(format_epoch_line(s, Verbosity::normal),
               StartsWith("restart 2/3  epoch    2/6  loss 0.250000"));
  }
  SECTION("verbose adds the learning rate, a known gradient norm and the improvement mark") {
    EpochSummary s = classification_summary(1);
    CHECK_THAT(format_epoch_line(s, Verbosity::normal), !Contains("lr") && !Contains("grad"));
    CHECK_THAT(format_epoch_line(s, Verbosity::verbose), EndsWith("0.41 s  lr 0.1  grad norm 2.5"));
    s.gradient_norm = -1;
    s.improved = true;
    CHECK_THAT(format_epoch_line(s, Verbosity::verbose), EndsWith("0.41 s  lr 0.1  improved"));
  }
}

TEST_CASE("the progress bar shows progress, rate and ETA within its width", "[cli][progress]") {
  SECTION("the full bar at 80 columns") {
    CHECK(format_progress_bar(3, 10, 4500, 10000, 2.0, 80) ==
          "epoch 3/10 [=============>                ] 45% 2250 samples/s ETA 0:03");
    CHECK(format_progress_bar(3, 10, 0, 10000, 0.0, 80) ==
          "epoch 3/10 [>                             ] 0%");
    CHECK(format_progress_bar(3, 10, 10000, 10000, 4.0, 80) ==
          "epoch 3/10 [==============================] 100% 2500 samples/s");
    CHECK_THAT(format_progress_bar(1, 1, 1, 100000, 1.0, 80), EndsWith("ETA 27:46:39"));
    CHECK_THAT(format_progress_bar(1, 1, 1, 1000000000, 1.0, 80), EndsWith("ETA >99h"));
  }
  SECTION("unknown total rows: rows done and the rate, no percentage") {
    const std::string bar = format_progress_bar(2, 5, 30000, -1, 3.0, 80);
    CHECK(bar == "epoch 2/5 30000 rows 10000 samples/s");
  }
  SECTION("never wider than the columns minus one") {
    const int columns = GENERATE(80, 60, 45, 30, 12, 1);
    const std::int64_t total = GENERATE(as<std::int64_t>{}, -1, 0, 999999999);
    CAPTURE(columns, total);
    const std::string bar = format_progress_bar(99999, 99999, 123456789, total, 0.001, columns);
    CAPTURE(bar);
    CHECK(bar.size() <= static_cast<std::size_t>(columns - 1));
  }
}

TEST_CASE("a reporter off a terminal prints the epoch lines and nothing else", "[cli][progress]") {
  MemoryOutput output;
  FakeClock clock;
  ProgressReporter reporter(output.file(), Verbosity::normal, false, clock.function());
  reporter.message("shardprop header");
  for (int epoch = 1; epoch <= 2; ++epoch) {
    reporter.begin_epoch(epoch, 6, 1000);
    for (int step = 1; step <= 10; ++step) {
      clock.advance(std::chrono::milliseconds(500));
      reporter.update(step * 100);
    }
    reporter.detail("only in verbose mode");
    reporter.end_epoch(classification_summary(epoch));
  }
  reporter.message("wrote m.st");
  CHECK(output.text() ==
        "shardprop header\n"
        "epoch    1/6  loss 0.500000  accuracy  81.00%  12345 samples/s  0.41 s\n"
        "epoch    2/6  loss 0.250000  accuracy  82.00%  12345 samples/s  0.82 s\n"
        "wrote m.st\n");
}

TEST_CASE("a reporter on a terminal redraws a bounded bar and ends with the epoch line",
          "[cli][progress]") {
  MemoryOutput output;
  FakeClock clock;
  ProgressReporter reporter(output.file(), Verbosity::normal, true, clock.function());
  const int columns = GENERATE(80, 40);
  reporter.set_columns(columns);
  CAPTURE(columns);

  SECTION("known total rows") {
    reporter.begin_epoch(1, 6, 1000);
    const std::size_t after_begin = count_of(output.text(), '\r');
    CHECK(after_begin >= 1);
    // Ten updates within 100 ms draw nothing new.
    for (int step = 1; step <= 10; ++step) {
      clock.advance(std::chrono::milliseconds(5));
      reporter.update(step * 10);
    }
    CHECK(count_of(output.text(), '\r') == after_begin);
    clock.advance(std::chrono::milliseconds(200));
    reporter.update(500);
    const std::string drawn = output.text();
    CHECK(count_of(drawn, '\r') > after_begin);
    CHECK_THAT(drawn, Contains("50%") && Contains("ETA") && Contains("samples/s"));
    CHECK(count_of(drawn, '\n') == 0);

    reporter.message("checkpoint c.st");
    reporter.end_epoch(classification_summary(1));
    const std::string text = output.text();
    const std::string line = format_epoch_line(classification_summary(1), Verbosity::normal);
    CHECK_THAT(text, EndsWith("\r\033[K" + line + "\n"));
    CHECK_THAT(text, Contains("\r\033[Kcheckpoint c.st\n"));
    for (const std::string& seen : drawn_lines(text)) {
      if (seen == line || seen == "checkpoint c.st") continue;
      CAPTURE(seen);
      CHECK(seen.size() < static_cast<std::size_t>(columns));
      CHECK_THAT(seen, StartsWith("epoch 1/6 "));
    }
  }
  SECTION("unknown total rows") {
    reporter.begin_epoch(2, 6, -1);
    clock.advance(std::chrono::milliseconds(1000));
    reporter.update(777);
    CHECK_THAT(output.text(), Contains("epoch 2/6 777 rows 777 samples/s") && !Contains("%"));
    reporter.end_epoch(classification_summary(2));
    CHECK_THAT(output.text(),
               EndsWith(format_epoch_line(classification_summary(2), Verbosity::normal) + "\n"));
  }
}

TEST_CASE("a quiet reporter prints nothing", "[cli][progress]") {
  const bool terminal = GENERATE(false, true);
  CAPTURE(terminal);
  MemoryOutput output;
  FakeClock clock;
  ProgressReporter reporter(output.file(), Verbosity::quiet, terminal, clock.function());
  reporter.message("header");
  reporter.begin_epoch(1, 6, 100);
  clock.advance(std::chrono::milliseconds(500));
  reporter.update(50);
  reporter.detail("detail");
  reporter.end_epoch(classification_summary(1));
  CHECK(output.text().empty());
}

TEST_CASE("a verbose reporter adds details, the learning rate and the gradient norm",
          "[cli][progress]") {
  MemoryOutput output;
  ProgressReporter reporter(output.file(), Verbosity::verbose, false);
  reporter.detail("shards 4, threads 2");
  reporter.begin_epoch(1, 6, 100);
  reporter.update(100);
  reporter.end_epoch(classification_summary(1));
  CHECK(output.text() ==
        "shards 4, threads 2\n"
        "epoch    1/6  loss 0.500000  accuracy  81.00%  12345 samples/s  0.41 s  lr 0.1  grad "
        "norm 2.5\n");
}

TEST_CASE("the metrics log writes one JSON object per epoch", "[cli][progress]") {
  TempDir dir;
  const std::filesystem::path path = dir / "metrics.jsonl";
  auto lines = [&] {
    std::vector<nlohmann::json> parsed;
    std::istringstream in(read_text(path));
    for (std::string line; std::getline(in, line);) parsed.push_back(nlohmann::json::parse(line));
    return parsed;
  };
  auto keys = [](const nlohmann::json& object) {
    std::set<std::string> names;
    for (const auto& item : object.items()) names.insert(item.key());
    return names;
  };

  SECTION("keys and values, classification without validation") {
    MetricsLog log(path, false);
    log.write(classification_summary(1));
    EpochSummary second = classification_summary(2);
    second.gradient_norm = -1;
    log.write(second);
    const std::string text = read_text(path);  // flushed without closing the log
    CHECK(count_of(text, '\n') == 2);
    const std::vector<nlohmann::json> parsed = lines();
    REQUIRE(parsed.size() == 2);
    CHECK(keys(parsed[0]) == std::set<std::string>{"epoch", "epochs", "restart", "train_loss",
                                                   "val_loss", "accuracy", "samples_per_second",
                                                   "epoch_seconds", "elapsed_seconds",
                                                   "learning_rate", "gradient_norm"});
    CHECK(parsed[0]["epoch"] == 1);
    CHECK(parsed[0]["epochs"] == 6);
    CHECK(parsed[0]["restart"] == 0);
    CHECK(parsed[0]["train_loss"].get<double>() == 0.5);
    CHECK(parsed[0]["val_loss"].is_null());
    CHECK_THAT(parsed[0]["accuracy"].get<double>(), Catch::Matchers::WithinRel(0.81));
    CHECK(parsed[0]["samples_per_second"].get<double>() == 12345.4);
    CHECK(parsed[0]["epoch_seconds"].get<double>() == 0.4);
    CHECK(parsed[0]["learning_rate"].get<double>() == 0.1);
    CHECK(parsed[0]["gradient_norm"].get<double>() == 2.5);
    CHECK(parsed[1]["epoch"] == 2);
    CHECK(parsed[1]["gradient_norm"].is_null());
  }
  SECTION("the learning rate is the float the step used, written as its shortest decimal") {
    MetricsLog log(path, false);
    EpochSummary s = classification_summary(1);
    s.learning_rate = static_cast<double>(0.05f);  // as Trainer::learning_rate() returns it
    log.write(s);
    CHECK_THAT(read_text(path), Contains("\"learning_rate\":0.05,"));
  }
  SECTION("regression with validation: val_loss and rmse, no accuracy") {
    EpochSummary s = classification_summary(1);
    s.regression = true;
    s.has_validation = true;
    s.validation_loss = 0.75;
    s.rmse = 0.125;
    s.restart = 2;
    MetricsLog(path, false).write(s);
    const std::vector<nlohmann::json> parsed = lines();
    REQUIRE(parsed.size() == 1);
    CHECK(parsed[0]["val_loss"].get<double>() == 0.75);
    CHECK(parsed[0]["rmse"].get<double>() == 0.125);
    CHECK(parsed[0]["restart"] == 2);
    CHECK_FALSE(parsed[0].contains("accuracy"));
  }
  SECTION("a new log truncates; an appending one continues") {
    {
      MetricsLog log(path, false);
      log.write(classification_summary(1));
      log.write(classification_summary(2));
    }
    MetricsLog(path, true).write(classification_summary(3));
    REQUIRE(lines().size() == 3);
    CHECK(lines()[2]["epoch"] == 3);
    MetricsLog(path, false).write(classification_summary(4));
    REQUIRE(lines().size() == 1);
    CHECK(lines()[0]["epoch"] == 4);
  }
  SECTION("appending to a missing file creates it") {
    MetricsLog(path, true).write(classification_summary(1));
    CHECK(lines().size() == 1);
  }
  SECTION("appending drops a last line that a crash cut short") {
    MetricsLog(path, false).write(classification_summary(1));
    write_text(path, read_text(path) + "{\"epoch\":2,\"epo");
    MetricsLog(path, true).write(classification_summary(3));
    const std::vector<nlohmann::json> parsed = lines();
    REQUIRE(parsed.size() == 2);
    CHECK(parsed[0]["epoch"] == 1);
    CHECK(parsed[1]["epoch"] == 3);
  }
  SECTION("a file that cannot be opened is an error naming it") {
    const std::filesystem::path missing = dir / "no-such-directory" / "metrics.jsonl";
    const bool append = GENERATE(false, true);
    CHECK_THROWS_MATCHES(
        MetricsLog(missing, append), shardprop::Error,
        Catch::Matchers::Message("metrics file " + missing.string() +
                                 ": cannot open for writing: No such file or directory"));
  }
}
