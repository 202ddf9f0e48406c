// What every fuzz target shares: the input as a file (the loaders read paths), option choices
// taken from the input's first bytes, and the rule for outcomes: a loader returns or throws
// shardprop::Error; any other exception, a failed check, or a sanitizer report is a bug.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <span>
#include <string>
#include <typeinfo>

namespace shardprop::fuzz {

// Prints what went wrong and aborts, so that libFuzzer saves the input as a crash.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
  std::abort();
}

#define FUZZ_CHECK(condition, what)                                                   \
  do {                                                                                \
    if (!(condition)) ::shardprop::fuzz::fail(std::string(#condition ": ") + (what)); \
  } while (false)

// An exception that is neither shardprop::Error nor one the caller expects.
[[noreturn]] inline void fail_unexpected(const std::exception& e) {
  fail(std::string("unexpected exception ") + typeid(e).name() + ": " + e.what());
}

// A file in memory (memfd) that the loaders open by path, /proc/self/fd/N, like any file;
// rewritten with each input, so runs touch no disk.
class ScratchFile {
 public:
  explicit ScratchFile(const char* name) : fd_(::memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) fail("memfd_create failed");
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~ScratchFile() { ::close(fd_); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  const std::filesystem::path& write(std::span<const std::uint8_t> bytes) {
    if (::ftruncate(fd_, 0) != 0) fail("ftruncate failed");
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n =
          ::pwrite(fd_, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n <= 0) fail("pwrite failed");
      done += static_cast<std::size_t>(n);
    }
    return path_;
  }

 private:
  int fd_;
  std::filesystem::path path_;
};

// The input's first bytes choose options; the rest is the content. A short input reads as
// zeros, so every byte string is a valid input.
class InputBytes {
 public:
  InputBytes(const std::uint8_t* data, std::size_t size) : bytes_(data, size) {}

  std::uint8_t take() {
    if (bytes_.empty()) return 0;
    const std::uint8_t byte = bytes_.front();
    bytes_ = bytes_.subspan(1);
    return byte;
  }
  template <class T, std::size_t N>
  T pick(const std::array<T, N>& choices) {
    return choices[take() % N];
  }
  std::span<const std::uint8_t> rest() const { return bytes_; }

 private:
  std::span<const std::uint8_t> bytes_;
};

}  // namespace shardprop::fuzz
