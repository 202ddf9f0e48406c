// POSIX implementation of the atomic replace (open/write/fsync/rename).
#include "atomic_file.hpp"

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

}  // namespace

void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::span<const std::byte> one[] = {bytes};
  write_file_atomically(path, one);
}

void write_file_atomically(const std::filesystem::path& path,
                           std::span<const std::span<const std::byte>> pieces) {
  const std::filesystem::path directory =
      path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  // Hidden, in the same directory (same file system, so rename is atomic).
  std::string name(".");
  name.append(path.filename().string()).append(".tmp.XXXXXX");
  std::string temp = (directory / name).string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) throw Error(path.string() + ": cannot create a temporary file: " + errno_text());
  auto fail = [&](const std::string& what) {
    const std::string reason = errno_text();
    ::close(fd);
    ::unlink(temp.c_str());
    throw Error(path.string() + ": " + what + ": " + reason);
  };
  for (const std::span<const std::byte> bytes : pieces) {
    std::size_t written = 0;
    while (written < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("write failed");
      }
      written += static_cast<std::size_t>(n);
    }
  }
  if (::fchmod(fd, 0644) != 0) fail("cannot set permissions");
  if (::fsync(fd) != 0) fail("fsync failed");
  if (::close(fd) != 0) {
    const std::string reason = errno_text();
    ::unlink(temp.c_str());
    throw Error(path.string() + ": close failed: " + reason);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = errno_text();
    ::unlink(temp.c_str());
    throw Error(path.string() + ": cannot rename the temporary file into place: " + reason);
  }
  // The rename is durable only once the directory entry is on disk.
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace shardprop::detail
