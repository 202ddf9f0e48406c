// What `shardprop train` prints while it trains: one line per epoch, and on a terminal a live
// progress bar within the epoch. Formatting and pacing only; the numbers come from the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace shardprop::cli {

enum class Verbosity { quiet, normal, verbose };

// The numbers of one finished epoch, as the epoch line and the metrics log show them.
struct EpochSummary {
  int epoch = 0, epochs = 0;      // 1-based epoch of how many
  int restart = 0, restarts = 1;  // 0-based restart of how many ("restart r+1/R" when restarts > 1)
  double train_loss = 0;
  bool has_validation = false;
  double validation_loss = 0;  // when has_validation
  bool regression = false;     // true: print rmse; false: accuracy
  double accuracy = 0;  // fraction in [0,1] (validation's if has_validation, else training data's)
  double rmse = 0;
  double samples_per_second = 0, epoch_seconds = 0, elapsed_seconds = 0;
  double learning_rate = 0;   // printed in verbose mode only
  double gradient_norm = -1;  // < 0: unknown; printed in verbose mode only
  bool improved = false;  // the validation loss improved (early stopping's test); verbose marks it
};

// The clock the reporter paces redraws and estimates with; tests inject a fake one.
using ProgressClock = std::function<std::chrono::steady_clock::time_point()>;

// Not thread-safe: call it from the thread that runs the epoch loop.
class ProgressReporter {
 public:
  // terminal: draw a live bar (decided by the caller, normally is_terminal(out)).
  ProgressReporter(std::FILE* out, Verbosity verbosity, bool terminal);
  ProgressReporter(std::FILE* out, Verbosity verbosity, bool terminal, ProgressClock clock);

  // total_rows < 0: unknown (streaming); the bar then shows rows done and the rate only.
  void begin_epoch(int epoch, int epochs, std::int64_t total_rows);
  // After each step: cheap; redraws at most ~10 times a second on a terminal, never otherwise.
  void update(std::int64_t rows_done);
  // Clears the bar and prints the epoch line (not in quiet mode).
  void end_epoch(const EpochSummary& summary);
  // Header lines, "wrote FILE", restart and early-stopping summaries: printed unless quiet.
  void message(const std::string& line);
  // Printed only in verbose mode ("checkpoint FILE").
  void detail(const std::string& line);

  // The widest bar line, in columns. Defaults to the terminal's width (TIOCGWINSZ) capped at 80.
  void set_columns(int columns);

 private:
  void draw_bar();
  void clear_bar();
  void print_line(const std::string& line);

  std::FILE* out_;
  Verbosity verbosity_;
  bool terminal_;
  ProgressClock clock_;
  int columns_ = 80;
  int epoch_ = 0;
  int epochs_ = 0;
  std::int64_t total_rows_ = -1;
  std::int64_t rows_done_ = 0;
  std::chrono::steady_clock::time_point epoch_start_{};
  std::chrono::steady_clock::time_point last_draw_{};
  bool bar_shown_ = false;
};

// Whether out is an interactive terminal that understands "\r" and clear-to-end-of-line:
// isatty, and TERM is not "dumb".
bool is_terminal(std::FILE* out);

// The epoch line without its newline, e.g.
// "epoch    3/10  loss 0.123456  val loss 0.234567  val accuracy  91.25%  12345 samples/s  1.23 s"
// (the last number is the time since training started). Verbose adds "  lr L  grad norm G" and
// "  improved".
std::string format_epoch_line(const EpochSummary& s, Verbosity verbosity);

// The live bar without "\r", at most `columns` - 1 characters, e.g.
// "epoch 3/10 [=========>          ] 45% 12345 samples/s ETA 0:07".
std::string format_progress_bar(int epoch, int epochs, std::int64_t rows_done,
                                std::int64_t total_rows, double seconds, int columns);

}  // namespace shardprop::cli
