// A whole file as read-only bytes: memory-mapped when possible, else read into memory (pipes,
// or when mmap fails). Either way kPadding zero bytes follow the end, so scanners may load a
// few words past the last byte without bounds checks. Leaves out writing and growing files; a
// file truncated while mapped raises SIGBUS on access, as with any mmap reader.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string_view>

namespace shardprop::detail {

class MappedFile {
 public:
  // Readable zero bytes after the last byte of the file.
  static constexpr std::size_t kPadding = 64;

  // Throws Error "FILE: cannot open: reason" or "FILE: cannot read: reason".
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const char* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::string_view view() const { return {data_, size_}; }
  bool mapped() const { return mapping_bytes_ != 0; }

 private:
  void read_all(int fd, const std::string& name, std::size_t size_hint);

  const char* data_ = nullptr;
  std::size_t size_ = 0;
  void* mapping_ = nullptr;  // the file mapping plus its zero padding, if mapped
  std::size_t mapping_bytes_ = 0;
  std::unique_ptr<char[]> buffer_;  // the bytes plus padding, if read
};

}  // namespace shardprop::detail
