// Crash-safe file replacement: write a temporary file in the target's directory, fsync it,
// rename it over the target, fsync the directory. Readers see the old file or the new one.
// Temporary files name their writer, so a later writer to the same name removes those a killed
// process left behind (never a live writer's).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
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
// pieces go to a hidden temporary file next to `path`, ".NAME.tmp.PID@HOST.XXXXXX", and
// commit() puts it in place. Until then the target is untouched; if commit() is never reached
// (an exception, an early return) the destructor removes the temporary file. Every method
// throws Error "PATH: what: OS error". Constructing one first removes the stale temporary files
// of NAME (remove_stale_temporaries). Not thread-safe: one thread writes.
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
  [[noreturn]] void fail(const std::string& what, int error);

  std::filesystem::path path_;
  std::filesystem::path temp_;
  int fd_ = -1;
  bool finished_ = false;  // committed, or failed and cleaned up
};

// The target name of a temporary file this layer names ".NAME.tmp.PID@HOST.XXXXXX", with its
// writer's process id and host; nullopt for any other name (older ".NAME.tmp.XXXXXX" files,
// which do not say who wrote them, among them).
struct TemporaryFileName {
  std::string target;  // NAME
  long pid = 0;
  std::string host;
};
std::optional<TemporaryFileName> parse_temporary_name(std::string_view file_name);

// Removes the temporary files in `directory` whose target name `ours` accepts and whose writer
// is gone: a process of this host that no longer exists (kill(pid, 0) fails with ESRCH).
// Files of a live process, of another host, or named otherwise stay. Best effort: errors are
// ignored. Returns how many it removed.
int remove_stale_temporaries(const std::filesystem::path& directory,
                             const std::function<bool(std::string_view target)>& ours);

// Tests only: a disk that fills up or fails. While set, an AtomicFileWriter whose target path
// contains `path_contains` fails as the OS would with `error`: at creation when
// `fail_creation` (a read-only directory: EROFS, EACCES), else once `bytes_left` bytes have
// been written by all such writers together (a full disk: ENOSPC, an I/O error: EIO).
struct InjectedWriteFault {
  std::string path_contains;
  int error = 0;
  bool fail_creation = false;
  std::uint64_t bytes_left = 0;
};
// Sets (or, with nullopt, clears) the fault. Not for concurrent writers.
void inject_write_fault_for_testing(std::optional<InjectedWriteFault> fault);

}  // namespace shardprop::detail
