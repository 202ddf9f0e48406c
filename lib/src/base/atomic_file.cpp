// POSIX implementation of the atomic replace (open/write/fsync/rename).
#include "base/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::filesystem::path directory_of(const std::filesystem::path& path) {
  return path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(const std::filesystem::path& path) : path_(path) {
  // Hidden, in the same directory (same file system, so rename is atomic).
  std::string name(".");
  name.append(path.filename().string()).append(".tmp.XXXXXX");
  std::string temp = (directory_of(path) / name).string();
  fd_ = ::mkstemp(temp.data());
  if (fd_ < 0) throw Error(path.string() + ": cannot create a temporary file: " + errno_text());
  temp_ = temp;
}

AtomicFileWriter::~AtomicFileWriter() {
  if (finished_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(temp_.c_str());
}

void AtomicFileWriter::fail(const std::string& what) {
  const std::string reason = errno_text();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_.c_str());
  finished_ = true;  // nothing left for the destructor to undo
  throw Error(path_.string() + ": " + what + ": " + reason);
}

void AtomicFileWriter::write(std::span<const std::byte> bytes) {
  if (fd_ < 0) throw Error(path_.string() + ": write after the file was committed or failed");
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    written += static_cast<std::size_t>(n);
  }
}

void AtomicFileWriter::write(std::string_view text) { write(std::as_bytes(std::span(text))); }

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw Error(path_.string() + ": commit after the file was committed or failed");
  if (::fchmod(fd_, 0644) != 0) fail("cannot set permissions");
  if (::fsync(fd_) != 0) fail("fsync failed");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close failed");
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    fail("cannot rename the temporary file into place");
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
