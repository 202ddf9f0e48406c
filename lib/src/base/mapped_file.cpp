// MappedFile: mmap with a zero-padding page behind the file (an anonymous reservation that the
// file mapping overlays), falling back to read(2) into a padded buffer.
#include "base/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

class Descriptor {
 public:
  explicit Descriptor(int fd) : fd_(fd) {}
  ~Descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::size_t page_size() {
  const long page = ::sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<std::size_t>(page) : 4096;
}

}  // namespace

MappedFile::MappedFile(const std::filesystem::path& path) {
  const std::string name = path.string();
  const Descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Error(name + ": cannot open: " + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) throw Error(name + ": cannot open: " + std::strerror(errno));
  if (S_ISDIR(info.st_mode)) throw Error(name + ": cannot open: " + std::strerror(EISDIR));
  if (!S_ISREG(info.st_mode)) {  // a pipe or a device: its size is unknown
    read_all(fd.get(), name, 0);
    return;
  }
  const auto size = static_cast<std::size_t>(info.st_size);
  if (size == 0) {
    read_all(fd.get(), name, 0);
    return;
  }
  // Reserve the file's pages plus one more, then map the file over the front of the
  // reservation: the tail of the last file page and the extra page read as zeros.
  const std::size_t page = page_size();
  const std::size_t file_pages = (size + page - 1) / page * page;
  const std::size_t total = file_pages + page;
  void* reservation =
      ::mmap(nullptr, total, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reservation != MAP_FAILED) {
    void* file = ::mmap(reservation, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd.get(), 0);
    if (file != MAP_FAILED) {
      mapping_ = reservation;
      mapping_bytes_ = total;
      data_ = static_cast<const char*>(file);
      size_ = size;
      return;
    }
    ::munmap(reservation, total);
  }
  read_all(fd.get(), name, size);
}

MappedFile::~MappedFile() {
  if (mapping_bytes_ != 0) ::munmap(mapping_, mapping_bytes_);
}

void MappedFile::read_all(int fd, const std::string& name, std::size_t size_hint) {
  std::size_t capacity = size_hint + 1;  // one more byte to see the end without another call
  std::size_t size = 0;
  buffer_ = std::make_unique<char[]>(capacity + kPadding);
  for (;;) {
    if (size == capacity) {
      const std::size_t grown = capacity * 2 + 4096;
      auto bigger = std::make_unique<char[]>(grown + kPadding);
      std::memcpy(bigger.get(), buffer_.get(), size);
      buffer_ = std::move(bigger);
      capacity = grown;
    }
    const ssize_t n = ::read(fd, buffer_.get() + size, capacity - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(name + ": cannot read: " + std::strerror(errno));
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }
  std::memset(buffer_.get() + size, 0, capacity - size + kPadding);
  data_ = buffer_.get();
  size_ = size;
}

}  // namespace shardprop::detail
