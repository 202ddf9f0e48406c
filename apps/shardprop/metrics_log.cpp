// The metrics file: JSON Lines written with nlohmann::json, one flushed line per epoch.
#include "metrics_log.hpp"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "json_number.hpp"
#include "shardprop/error.hpp"

namespace shardprop::cli {

namespace {

std::string failure(const std::filesystem::path& path, const std::string& what, int error) {
  return "metrics file " + path.string() + ": " + what + ": " + std::strerror(error);
}

// The size of the file up to and including its last newline: what is left after dropping a
// line that a crash cut short.
std::uintmax_t complete_lines_size(const std::filesystem::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw Error(failure(path, "cannot read", errno));
  std::uintmax_t size = 0;
  std::uintmax_t offset = 0;
  char buffer[4096];
  for (;;) {
    const std::size_t count = std::fread(buffer, 1, sizeof buffer, file);
    for (std::size_t i = 0; i < count; ++i) {
      if (buffer[i] == '\n') size = offset + i + 1;
    }
    offset += count;
    if (count < sizeof buffer) break;
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) throw Error(failure(path, "cannot read", EIO));
  return size;
}

}  // namespace

MetricsLog::MetricsLog(const std::filesystem::path& path, bool append) : path_(path) {
  std::error_code error;
  if (append && std::filesystem::is_regular_file(path, error)) {
    const std::uintmax_t keep = complete_lines_size(path);
    if (keep != std::filesystem::file_size(path, error)) {
      std::filesystem::resize_file(path, keep, error);
      if (error) throw Error(failure(path, "cannot drop its incomplete last line", error.value()));
    }
  }
  file_.reset(std::fopen(path.c_str(), append ? "ab" : "wb"));
  if (!file_) throw Error(failure(path, "cannot open for writing", errno));
}

namespace {

// The size of the file up to the first line that comes after (restart, epoch), or that is not
// a complete JSON object: what a resumed run keeps.
std::uintmax_t lines_through(const std::filesystem::path& path, int restart, int epoch) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw Error(failure(path, "cannot read", errno));
  std::string text;
  char buffer[4096];
  for (std::size_t count; (count = std::fread(buffer, 1, sizeof buffer, file)) > 0;) {
    text.append(buffer, count);
  }
  std::fclose(file);
  std::uintmax_t keep = 0;
  for (std::size_t begin = 0; begin < text.size();) {
    const std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;
    const auto line =
        nlohmann::json::parse(text.begin() + static_cast<std::ptrdiff_t>(begin),
                              text.begin() + static_cast<std::ptrdiff_t>(end), nullptr, false);
    if (!line.is_object() || !line.value("restart", nlohmann::json()).is_number_integer() ||
        !line.value("epoch", nlohmann::json()).is_number_integer()) {
      break;
    }
    const int r = line["restart"].get<int>();
    const int e = line["epoch"].get<int>();
    if (r > restart || (r == restart && e > epoch)) break;
    keep = end + 1;
    begin = end + 1;
  }
  return keep;
}

}  // namespace

MetricsLog::MetricsLog(const std::filesystem::path& path, int restart, int epoch) : path_(path) {
  std::error_code error;
  if (std::filesystem::is_regular_file(path, error)) {
    const std::uintmax_t keep = lines_through(path, restart, epoch);
    if (keep != std::filesystem::file_size(path, error)) {
      std::filesystem::resize_file(path, keep, error);
      if (error) throw Error(failure(path, "cannot drop the epochs trained again", error.value()));
    }
  }
  file_.reset(std::fopen(path.c_str(), "ab"));
  if (!file_) throw Error(failure(path, "cannot open for writing", errno));
}

void MetricsLog::write(const EpochSummary& s) {
  // Ordered so that the file reads in the same order as the epoch line.
  nlohmann::ordered_json line;
  line["epoch"] = s.epoch;
  line["epochs"] = s.epochs;
  line["restart"] = s.restart;
  line["train_loss"] = s.train_loss;
  line["val_loss"] = s.has_validation ? nlohmann::ordered_json(s.validation_loss) : nullptr;
  if (s.regression) {
    line["rmse"] = s.rmse;
  } else {
    line["accuracy"] = s.accuracy;
  }
  line["samples_per_second"] = s.samples_per_second;
  line["epoch_seconds"] = s.epoch_seconds;
  line["elapsed_seconds"] = s.elapsed_seconds;
  // The step uses the rate as a float; write that float, shortest ("0.1", not 0.10000000149...).
  line["learning_rate"] = json_float(static_cast<float>(s.learning_rate));
  line["gradient_norm"] = s.gradient_norm >= 0 ? nlohmann::ordered_json(s.gradient_norm) : nullptr;
  const std::string text = line.dump() + '\n';
  errno = 0;
  if (std::fwrite(text.data(), 1, text.size(), file_.get()) != text.size() ||
      std::fflush(file_.get()) != 0) {
    throw Error(failure(path_, "cannot write", errno != 0 ? errno : EIO));
  }
}

}  // namespace shardprop::cli
