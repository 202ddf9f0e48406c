// The bytes of a CSV input, however they arrive: a plain file, a gzip or zstd file (detected by
// magic bytes, never by the name), or standard input ("-"). Compressed input is decompressed
// by a thread of its own, a few blocks ahead of the reader. Leaves out parsing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace shardprop::detail {

enum class Compression { none, gzip, zstd };

// "plain", "gzip" or "zstd".
const char* compression_name(Compression compression);

// The path "-" means standard input.
bool is_standard_input(const std::filesystem::path& path);

// The name messages give an input: "<stdin>" for "-", else the path as given.
std::string input_name(const std::filesystem::path& path);

// A regular file's compression, from its first bytes (gzip: 1f 8b; zstd: 28 b5 2f fd); none for
// anything else, standard input and other files that are not regular (it reads nothing from
// them). Throws Error "FILE: cannot open: reason".
Compression file_compression(const std::filesystem::path& path);

class InputSource {
 public:
  // Opens `path` ("-": standard input) and reads its first bytes to tell its compression.
  // Compressed input is decompressed up to `read_ahead_bytes` (at least 2 MB) ahead of the
  // reader: a reader that parses blocks of N bytes passes N, so that the next block is
  // decompressed while one is parsed. Throws Error "FILE: cannot open: reason".
  static std::unique_ptr<InputSource> open(const std::filesystem::path& path,
                                           std::size_t read_ahead_bytes = 0);

  virtual ~InputSource();
  InputSource(const InputSource&) = delete;
  InputSource& operator=(const InputSource&) = delete;

  // Reads up to `size` decompressed bytes; fewer only at the end, 0 only at the end. Throws
  // Error naming the input for unreadable, truncated ("gzip data ends early") or corrupt data
  // (the decoder's message and the compressed offset).
  virtual std::size_t read(char* into, std::size_t size) = 0;
  // Starts again from the first byte. Standard input and pipes cannot: once bytes were read,
  // throws Error saying so (before any read it does nothing).
  virtual void rewind() = 0;
  // Continues reading at this offset of a plain regular file. Throws Error for other inputs.
  virtual void seek(std::uint64_t offset) = 0;
  // Compressed bytes consumed so far (for plain input, the bytes read).
  virtual std::uint64_t compressed_bytes_read() const = 0;
  // Memory the source holds for its read-ahead.
  virtual std::size_t held_bytes() const = 0;

  Compression compression() const { return compression_; }
  const std::string& name() const { return name_; }

 protected:
  InputSource(std::string name, Compression compression)
      : name_(std::move(name)), compression_(compression) {}

 private:
  std::string name_;
  Compression compression_;
};

// The whole of an input as bytes followed by MappedFile::kPadding zero bytes: a plain regular
// file is memory-mapped (MappedFile); compressed input and standard input are read through an
// InputSource into memory.
class InputText {
 public:
  explicit InputText(const std::filesystem::path& path);
  ~InputText();
  InputText(const InputText&) = delete;
  InputText& operator=(const InputText&) = delete;

  std::string_view view() const { return {data_, size_}; }
  Compression compression() const { return compression_; }

 private:
  struct Storage;
  std::unique_ptr<Storage> storage_;
  const char* data_ = nullptr;
  std::size_t size_ = 0;
  Compression compression_ = Compression::none;
};

}  // namespace shardprop::detail
