// estimated_csv_bytes: a file's size, or for a compressed file what its text would take, from
// the sizes the formats record.
#include <sys/stat.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/input_source.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

// CSV text of numbers compresses by three or more (gzip -6 about 3 to 4, zstd -3 about 4).
constexpr std::uint64_t kAssumedRatio = 3;
// A zstd frame header's largest size (zstd.h's ZSTD_FRAMEHEADERSIZE_MAX, outside its stable API).
constexpr std::size_t kZstdFrameHeaderMax = 18;

// `size` bytes of `path` from `offset`; fewer if the file is shorter.
std::string bytes_at(const std::filesystem::path& path, std::uint64_t offset, std::size_t size) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(size, '\0');
  if (in) in.seekg(static_cast<std::streamoff>(offset));
  if (in) in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (in.bad() || (!in && !in.eof())) {
    throw Error(detail::input_name(path) + ": cannot read: " + std::strerror(errno));
  }
  bytes.resize(static_cast<std::size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return bytes;
}

}  // namespace

std::uint64_t estimated_csv_bytes(const std::filesystem::path& path) {
  if (detail::is_standard_input(path)) return 0;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    throw Error(detail::input_name(path) + ": cannot read: " + std::strerror(errno));
  }
  if (!S_ISREG(info.st_mode)) return 0;
  const auto size = static_cast<std::uint64_t>(info.st_size);
  const detail::Compression compression = detail::file_compression(path);
  if (compression == detail::Compression::none) return size;
  std::uint64_t recorded = 0;
  if (compression == detail::Compression::gzip && size >= 4) {
    // The trailer's ISIZE: the last member's length modulo 2^32, little-endian.
    const std::string tail = bytes_at(path, size - 4, 4);
    for (std::size_t i = tail.size(); i-- > 0;) {
      recorded = recorded << 8 | static_cast<unsigned char>(tail[i]);
    }
  } else if (compression == detail::Compression::zstd) {
    const std::string head = bytes_at(path, 0, kZstdFrameHeaderMax);
    const unsigned long long content = ZSTD_getFrameContentSize(head.data(), head.size());
    if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != ZSTD_CONTENTSIZE_ERROR) {
      recorded = content;
    }
  }
  return std::max(recorded, size * kAssumedRatio);
}

}  // namespace shardprop
