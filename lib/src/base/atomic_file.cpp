// POSIX implementation of the atomic replace (open/write/fsync/rename), the writer-named
// temporary files and the removal of stale ones, and the tests' fault injection.
#include "base/atomic_file.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>
#include <string>
#include <system_error>

#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

namespace fs = std::filesystem;

std::filesystem::path directory_of(const std::filesystem::path& path) {
  return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

// This host's name as a temporary file carries it: letters, digits and '-' only (no '.', which
// separates the parts of the name), at most 32 of them.
const std::string& host_tag() {
  static const std::string tag = [] {
    char name[256] = {};
    std::string text = ::gethostname(name, sizeof name - 1) == 0 ? name : "";
    std::string kept;
    for (const char c : text) {
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') kept += c;
      if (kept.size() == 32) break;
    }
    return kept.empty() ? std::string("host") : kept;
  }();
  return tag;
}

bool process_is_gone(long pid) { return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH; }

// The tests' injected fault; empty in every real run.
std::mutex fault_mutex;
std::optional<InjectedWriteFault> injected_fault;

// The fault that applies to writes of `path`, if any (a copy; bytes_left is consumed through
// take_fault_budget).
std::optional<InjectedWriteFault> fault_for(const fs::path& path) {
  const std::lock_guard lock(fault_mutex);
  if (!injected_fault || path.string().find(injected_fault->path_contains) == std::string::npos) {
    return std::nullopt;
  }
  return injected_fault;
}

// How many of `wanted` bytes the injected fault still lets through (and consumes them).
std::size_t take_fault_budget(std::size_t wanted) {
  const std::lock_guard lock(fault_mutex);
  if (!injected_fault) return wanted;
  const auto granted =
      static_cast<std::size_t>(std::min<std::uint64_t>(wanted, injected_fault->bytes_left));
  injected_fault->bytes_left -= granted;
  return granted;
}

}  // namespace

std::optional<TemporaryFileName> parse_temporary_name(std::string_view name) {
  // "." NAME ".tmp." PID "@" HOST "." XXXXXX
  constexpr std::size_t kRandom = 6;
  if (name.size() < 1 + 1 + 5 + 1 + 1 + 1 + 1 + kRandom || name.front() != '.') return std::nullopt;
  if (name[name.size() - kRandom - 1] != '.') return std::nullopt;
  const std::string_view rest = name.substr(1, name.size() - kRandom - 2);  // NAME.tmp.PID@HOST
  const std::size_t tmp = rest.rfind(".tmp.");
  if (tmp == std::string_view::npos || tmp == 0) return std::nullopt;
  const std::string_view writer = rest.substr(tmp + 5);
  const std::size_t at = writer.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == writer.size()) return std::nullopt;
  TemporaryFileName parsed;
  const auto [end, error] = std::from_chars(writer.data(), writer.data() + at, parsed.pid);
  if (error != std::errc() || end != writer.data() + at || parsed.pid <= 0) return std::nullopt;
  parsed.host = std::string(writer.substr(at + 1));
  if (parsed.host.find('.') != std::string::npos) return std::nullopt;
  parsed.target = std::string(rest.substr(0, tmp));
  return parsed;
}

int remove_stale_temporaries(const fs::path& directory,
                             const std::function<bool(std::string_view target)>& ours) {
  int removed = 0;
  std::error_code error;
  for (fs::directory_iterator it(directory, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    const std::optional<TemporaryFileName> temp = parse_temporary_name(name);
    if (!temp || temp->host != host_tag() || !ours(temp->target)) continue;
    if (!process_is_gone(temp->pid)) continue;
    std::error_code ignored;
    if (fs::remove(it->path(), ignored)) ++removed;
  }
  return removed;
}

void inject_write_fault_for_testing(std::optional<InjectedWriteFault> fault) {
  const std::lock_guard lock(fault_mutex);
  injected_fault = std::move(fault);
}

AtomicFileWriter::AtomicFileWriter(const std::filesystem::path& path) : path_(path) {
  const std::string target = path.filename().string();
  remove_stale_temporaries(directory_of(path),
                           [&](std::string_view name) { return name == target; });
  if (const auto fault = fault_for(path); fault && fault->fail_creation) {
    throw Error(path.string() + ": cannot create a temporary file: " + std::strerror(fault->error));
  }
  // Hidden, in the same directory (same file system, so rename is atomic), naming its writer.
  std::string name(".");
  name.append(target)
      .append(".tmp.")
      .append(std::to_string(::getpid()))
      .append("@")
      .append(host_tag())
      .append(".XXXXXX");
  std::string temp = (directory_of(path) / name).string();
  fd_ = ::mkstemp(temp.data());
  if (fd_ < 0) {
    throw Error(path.string() + ": cannot create a temporary file: " + std::strerror(errno));
  }
  temp_ = temp;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (finished_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(temp_.c_str());
}

void AtomicFileWriter::fail(const std::string& what, int error) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_.c_str());
  finished_ = true;  // nothing left for the destructor to undo
  throw Error(path_.string() + ": " + what + ": " + std::strerror(error));
}

void AtomicFileWriter::write(std::span<const std::byte> bytes) {
  if (fd_ < 0) throw Error(path_.string() + ": write after the file was committed or failed");
  const std::optional<InjectedWriteFault> fault = fault_for(path_);
  std::size_t written = 0;
  while (written < bytes.size()) {
    std::size_t size = bytes.size() - written;
    if (fault) {
      size = take_fault_budget(size);
      if (size == 0) fail("write failed", fault->error);
    }
    const ssize_t n = ::write(fd_, bytes.data() + written, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed", errno);
    }
    written += static_cast<std::size_t>(n);
  }
}

void AtomicFileWriter::write(std::string_view text) { write(std::as_bytes(std::span(text))); }

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw Error(path_.string() + ": commit after the file was committed or failed");
  if (::fchmod(fd_, 0644) != 0) fail("cannot set permissions", errno);
  if (::fsync(fd_) != 0) fail("fsync failed", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close failed", errno);
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    fail("cannot rename the temporary file into place", errno);
  }
  finished_ = true;
  // The rename is durable only once the directory entry is on disk.
  const int dir = ::open(directory_of(path_).c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::span<const std::byte> one[] = {bytes};
  write_file_atomically(path, one);
}

void write_file_atomically(const std::filesystem::path& path,
                           std::span<const std::span<const std::byte>> pieces) {
  AtomicFileWriter file(path);
  for (const std::span<const std::byte> bytes : pieces) file.write(bytes);
  file.commit();
}

}  // namespace shardprop::detail
