// `--metrics FILE`: one JSON object per finished epoch, one line each (JSON Lines), for plotting
// and for comparing runs. The format is described in docs/progress-and-metrics.md.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>

#include "progress.hpp"

namespace shardprop::cli {

class MetricsLog {
 public:
  // append=false: start a new file (truncate); append=true: continue an existing one (used by
  // --resume), first dropping an incomplete last line that a crash may have left. Throws Error
  // naming the file if it cannot be opened.
  MetricsLog(const std::filesystem::path& path, bool append);

  // --resume from restart `restart` (0-based) after epoch `epoch`: continue the file, first
  // dropping the lines of epochs the resumed run trains again (those after that point, left by
  // the interrupted run), so the file again has one line per epoch of the run.
  MetricsLog(const std::filesystem::path& path, int restart, int epoch);

  // Writes the epoch's line and flushes it to the operating system, so a crash of the process
  // loses at most the line being written. Throws Error naming the file on a write failure.
  void write(const EpochSummary& s);

  const std::filesystem::path& path() const { return path_; }

 private:
  struct CloseFile {
    void operator()(std::FILE* file) const { std::fclose(file); }
  };
  std::filesystem::path path_;
  std::unique_ptr<std::FILE, CloseFile> file_;
};

}  // namespace shardprop::cli
