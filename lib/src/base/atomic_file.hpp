// Crash-safe file replacement: write a temporary file in the target's directory, fsync it,
// rename it over the target, fsync the directory. Readers see the old file or the new one.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace shardprop::detail {

// Throws Error naming the path on any failure; the target is then untouched and the
// temporary file removed.
void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes);
// The same for a file made of several pieces written back to back (no combined copy).
void write_file_atomically(const std::filesystem::path& path,
                           std::span<const std::span<const std::byte>> pieces);

// The same for output produced piece by piece (for example a stream of predictions): the
// pieces go to a hidden temporary file next to `path`, and commit() puts it in place. Until
// then the target is untouched; if commit() is never reached (an exception, an early return)
// the destructor removes the temporary file. Every method throws Error naming the path.
// Not thread-safe: one thread writes.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::filesystem::path& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(std::span<const std::byte> bytes);
  void write(std::string_view text);
  // fsync, rename over the target, fsync the directory. REQUIRES: not committed yet.
  void commit();

  const std::filesystem::path& temporary_path() const { return temp_; }

 private:
  [[noreturn]] void fail(const std::string& what);

  std::filesystem::path path_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool finished_ = false;  // committed, or failed and cleaned up
};

}  // namespace shardprop::detail
