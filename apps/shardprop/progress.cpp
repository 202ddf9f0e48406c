// The epoch line, the live bar and when to draw it. The bar is one line redrawn in place with
// "\r" and ESC[K (clear to end of line); everything else is plain lines, so logs stay greppable.
#include "progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

namespace shardprop::cli {

namespace {

constexpr int kMaxColumns = 80;
// Redraw at most this often: enough to look live, rare enough to cost nothing.
constexpr std::chrono::milliseconds kRedrawInterval{100};
constexpr std::string_view kClearLine = "\r\033[K";
// The widest text after the bar: " 100% 9999999 samples/s ETA 99:59:59". Reserving it keeps the
// bar's length steady while the numbers change.
constexpr int kReservedTail = 36;
constexpr int kMaxBarInner = 30;
constexpr int kMinBarInner = 5;

__attribute__((format(printf, 2, 3))) void append_format(std::string& text, const char* format,
                                                         ...) {
  char buffer[256];
  va_list arguments;
  va_start(arguments, format);
  const int length = std::vsnprintf(buffer, sizeof buffer, format, arguments);
  va_end(arguments);
  if (length > 0) text.append(buffer, std::min<std::size_t>(length, sizeof buffer - 1));
}

// "0:07", "12:34", "1:02:03"; rounded up so that a nearly finished epoch never shows 0:00.
std::string duration_text(double seconds) {
  if (!(seconds < 100.0 * 3600.0)) return ">99h";
  const long total = static_cast<long>(std::ceil(std::max(seconds, 0.0)));
  std::string text;
  if (total >= 3600) {
    append_format(text, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
  } else {
    append_format(text, "%ld:%02ld", total / 60, total % 60);
  }
  return text;
}

int terminal_columns(std::FILE* out) {
  winsize size{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
    return std::min<int>(size.ws_col, kMaxColumns);
  }
  return kMaxColumns;
}

}  // namespace

bool is_terminal(std::FILE* out) {
  if (::isatty(::fileno(out)) == 0) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

std::string format_epoch_line(const EpochSummary& s, Verbosity verbosity) {
  std::string line;
  if (s.restarts > 1) append_format(line, "restart %d/%d  ", s.restart + 1, s.restarts);
  append_format(line, "epoch %4d/%d  loss %.6f", s.epoch, s.epochs, s.train_loss);
  if (s.has_validation) append_format(line, "  val loss %.6f", s.validation_loss);
  const char* prefix = s.has_validation ? "val " : "";
  if (s.regression) {
    append_format(line, "  %srmse %.6f", prefix, s.rmse);
  } else {
    append_format(line, "  %saccuracy %6.2f%%", prefix, 100.0 * s.accuracy);
  }
  append_format(line, "  %.0f samples/s  %.2f s", s.samples_per_second, s.elapsed_seconds);
  if (verbosity == Verbosity::verbose) {
    append_format(line, "  lr %g", s.learning_rate);
    if (s.gradient_norm >= 0) append_format(line, "  grad norm %.6g", s.gradient_norm);
    if (s.improved) line += "  improved";
  }
  return line;
}

std::string format_progress_bar(int epoch, int epochs, std::int64_t rows_done,
                                std::int64_t total_rows, double seconds, int columns) {
  std::string line;
  append_format(line, "epoch %d/%d ", epoch, epochs);
  const double rate = seconds > 0 ? static_cast<double>(rows_done) / seconds : 0.0;
  std::string tail;
  if (total_rows < 0) {
    append_format(tail, "%lld rows", static_cast<long long>(rows_done));
    if (rate > 0) append_format(tail, " %.0f samples/s", rate);
  } else {
    const std::int64_t done = std::clamp<std::int64_t>(rows_done, 0, total_rows);
    const double fraction =
        total_rows > 0 ? static_cast<double>(done) / static_cast<double>(total_rows) : 1.0;
    const int inner =
        std::min(kMaxBarInner, columns - 1 - static_cast<int>(line.size()) - kReservedTail - 2);
    if (inner >= kMinBarInner) {
      const int filled = static_cast<int>(fraction * inner);
      line += '[';
      line.append(std::min(filled, inner), '=');
      if (filled < inner) {
        line += '>';
        line.append(inner - filled - 1, ' ');
      }
      line += "] ";
    }
    append_format(tail, "%d%%", static_cast<int>(fraction * 100.0));
    if (rate > 0) {
      append_format(tail, " %.0f samples/s", rate);
      if (done < total_rows) {
        tail += " ETA " + duration_text(static_cast<double>(total_rows - done) / rate);
      }
    }
  }
  line += tail;
  // A line as wide as the terminal would wrap the cursor to the next line, defeating "\r".
  line.resize(std::min<std::size_t>(line.size(), std::max(columns - 1, 0)));
  return line;
}

ProgressReporter::ProgressReporter(std::FILE* out, Verbosity verbosity, bool terminal)
    : ProgressReporter(out, verbosity, terminal, [] { return std::chrono::steady_clock::now(); }) {}

ProgressReporter::ProgressReporter(std::FILE* out, Verbosity verbosity, bool terminal,
                                   ProgressClock clock)
    : out_(out),
      verbosity_(verbosity),
      terminal_(terminal && verbosity != Verbosity::quiet),
      clock_(std::move(clock)),
      columns_(terminal_ ? terminal_columns(out) : kMaxColumns) {}

void ProgressReporter::set_columns(int columns) { columns_ = std::min(columns, kMaxColumns); }

void ProgressReporter::begin_epoch(int epoch, int epochs, std::int64_t total_rows) {
  epoch_ = epoch;
  epochs_ = epochs;
  total_rows_ = total_rows;
  rows_done_ = 0;
  if (!terminal_) return;
  epoch_start_ = clock_();
  draw_bar();
}

void ProgressReporter::update(std::int64_t rows_done) {
  rows_done_ = rows_done;
  if (!terminal_) return;
  if (clock_() - last_draw_ < kRedrawInterval) return;
  draw_bar();
}

void ProgressReporter::end_epoch(const EpochSummary& summary) {
  if (verbosity_ == Verbosity::quiet) return;
  clear_bar();
  print_line(format_epoch_line(summary, verbosity_));
}

void ProgressReporter::message(const std::string& line) {
  if (verbosity_ == Verbosity::quiet) return;
  const bool redraw = bar_shown_;
  clear_bar();
  print_line(line);
  if (redraw) draw_bar();
}

void ProgressReporter::detail(const std::string& line) {
  if (verbosity_ == Verbosity::verbose) message(line);
}

void ProgressReporter::draw_bar() {
  const auto now = clock_();
  const double seconds = std::chrono::duration<double>(now - epoch_start_).count();
  std::string text(kClearLine.substr(0, 1));  // "\r": the clear follows the text
  text += format_progress_bar(epoch_, epochs_, rows_done_, total_rows_, seconds, columns_);
  text += kClearLine.substr(1);
  std::fputs(text.c_str(), out_);
  std::fflush(out_);
  last_draw_ = now;
  bar_shown_ = true;
}

void ProgressReporter::clear_bar() {
  if (!bar_shown_) return;
  std::fputs(std::string(kClearLine).c_str(), out_);
  bar_shown_ = false;
}

void ProgressReporter::print_line(const std::string& line) {
  std::fputs(line.c_str(), out_);
  std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace shardprop::cli
