// O_TMPFILE where the file system has it, else mkstemp and an immediate unlink.
#include "stdin_spool.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shardprop/error.hpp"

namespace shardprop::cli {
namespace {

std::string temporary_directory() {
  const char* directory = std::getenv("TMPDIR");
  return directory != nullptr && *directory != '\0' ? directory : "/tmp";
}

Error cannot_copy(const std::string& directory, int error) {
  return Error("<stdin>: cannot copy standard input to " + directory + ": " + std::strerror(error) +
               " (set TMPDIR to a directory with room)");
}

// An open, unlinked, empty file in `directory`.
int unlinked_file(const std::string& directory) {
  int fd = ::open(directory.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  std::string name = directory + "/shardprop-stdin-XXXXXX";
  fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) throw cannot_copy(directory, errno);
  ::unlink(name.c_str());
  return fd;
}

}  // namespace

void spool_standard_input() {
  const std::string directory = temporary_directory();
  const int fd = unlinked_file(directory);
  std::vector<char> buffer(std::size_t{1} << 20);
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      throw Error(std::string("<stdin>: cannot read: ") + std::strerror(error));
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t written = ::write(fd, buffer.data() + done, static_cast<std::size_t>(n - done));
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) {
        const int error = errno;
        ::close(fd);
        throw cannot_copy(directory, error);
      }
      done += written;
    }
  }
  if (::lseek(fd, 0, SEEK_SET) < 0 || ::dup2(fd, STDIN_FILENO) < 0) {
    const int error = errno;
    ::close(fd);
    throw cannot_copy(directory, error);
  }
  ::close(fd);
}

}  // namespace shardprop::cli
