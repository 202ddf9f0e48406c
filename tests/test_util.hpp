// Small helpers shared by the tests: a self-deleting temporary directory, whole-file reads and
// writes, exception messages and reproducible uniform numbers. Header-only; nothing here knows
// about the library.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace shardprop::test {

// A fresh directory under the system temp directory, removed with everything in it on
// destruction. Unique per process and per instance, so ctest may run test cases in parallel.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const std::filesystem::path base = std::filesystem::temp_directory_path();
    for (int attempt = 0;; ++attempt) {
      path_ = base / ("shardprop-test-" + std::to_string(::getpid()) + "-" +
                      std::to_string(counter.fetch_add(1)));
      if (std::filesystem::create_directory(path_)) return;
      if (attempt > 1000) throw std::runtime_error("cannot create a temporary directory");
    }
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(std::string_view name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::filesystem::path& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline void write_text(const std::filesystem::path& path, std::string_view text) {
  write_bytes(path, std::vector<char>(text.begin(), text.end()));
}

inline std::vector<char> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::string read_text(const std::filesystem::path& path) {
  const std::vector<char> bytes = read_bytes(path);
  return {bytes.begin(), bytes.end()};
}

// Names of the entries of a directory (not recursive), sorted.
inline std::vector<std::string> directory_entries(const std::filesystem::path& directory) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The message of the exception of type E that f() throws. Fails the test when f() returns; any
// other exception propagates and Catch reports it.
template <class E, class F>
std::string thrown_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception, none was thrown");
  return {};
}

// Uniform in [-1, 1) from 24 bits of a fixed-seed Mersenne Twister, whose output sequence the
// standard specifies (the standard distributions are not, so they differ between libraries).
inline float uniform_pm1(std::mt19937_64& bits) {
  return static_cast<float>(bits() >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

}  // namespace shardprop::test
