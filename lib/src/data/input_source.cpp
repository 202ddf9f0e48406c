// InputSource: plain input read straight from the descriptor (the kernel reads ahead); compressed
// input decompressed by a thread of its own into a few blocks that the reader takes in turn, so
// parsing one block overlaps decompressing the next. InputText: a whole input in memory.
#include "data/input_source.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "base/mapped_file.hpp"
#include "data/input_decoder.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

constexpr std::size_t kMagicBytes = 4;
constexpr std::size_t kCompressedReadBytes = std::size_t{256} << 10;
constexpr std::size_t kBlockBytes = std::size_t{1} << 20;  // decompressed block
constexpr std::size_t kMinReadyBlocks = 2;                 // decompressed ahead of the reader

Compression compression_of(const unsigned char* bytes, std::size_t size) {
  if (size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) return Compression::gzip;
  if (size >= 4 && bytes[0] == 0x28 && bytes[1] == 0xb5 && bytes[2] == 0x2f && bytes[3] == 0xfd) {
    return Compression::zstd;
  }
  return Compression::none;
}

Error cannot_open(const std::string& name) {
  return Error(name + ": cannot open: " + std::strerror(errno));
}

// A descriptor (standard input is not closed) and the bytes read ahead to find the magic number
// of an input that cannot seek back. A regular file is read with pread at a position of its own,
// so that several readers of one descriptor (standard input that is a file) do not share one.
class RawInput {
 public:
  RawInput(const std::filesystem::path& path, std::string name) : name_(std::move(name)) {
    if (is_standard_input(path)) {
      fd_ = STDIN_FILENO;
      owned_ = false;
    } else {
      fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) throw cannot_open(name_);
    }
    struct stat info {};
    if (::fstat(fd_, &info) != 0) {
      const Error error = cannot_open(name_);
      close();
      throw error;
    }
    if (S_ISDIR(info.st_mode)) {
      close();
      errno = EISDIR;
      throw cannot_open(name_);
    }
    seekable_ = S_ISREG(info.st_mode);
  }
  ~RawInput() { close(); }
  RawInput(const RawInput&) = delete;
  RawInput& operator=(const RawInput&) = delete;

  // The first bytes, read without consuming them.
  Compression peek_compression() {
    unsigned char magic[kMagicBytes];
    std::size_t size = 0;
    if (seekable_) {
      for (;;) {
        const ssize_t n = ::pread(fd_, magic, kMagicBytes, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw Error(name_ + ": cannot read: " + std::strerror(errno));
        size = static_cast<std::size_t>(n);
        break;
      }
    } else {
      while (ahead_.size() < kMagicBytes) {
        char byte[kMagicBytes];
        const std::size_t n = read_descriptor(byte, kMagicBytes - ahead_.size(), nullptr);
        if (n == 0) break;
        ahead_.append(byte, n);
      }
      size = ahead_.size();
      std::memcpy(magic, ahead_.data(), size);
    }
    return compression_of(magic, size);
  }

  // Reads up to `size` bytes; 0 at the end. `stop`, when given, is checked while a pipe has
  // nothing to read, so that a reader thread can be stopped.
  std::size_t read(char* into, std::size_t size, const std::atomic<bool>* stop) {
    if (ahead_position_ < ahead_.size()) {
      const std::size_t n = std::min(size, ahead_.size() - ahead_position_);
      std::memcpy(into, ahead_.data() + ahead_position_, n);
      ahead_position_ += n;
      consumed_ = true;
      return n;
    }
    const std::size_t n = read_descriptor(into, size, stop);
    if (n > 0) consumed_ = true;
    return n;
  }

  // To the first byte again; false when the input cannot (a pipe already read from).
  bool rewind() {
    if (!consumed_) return true;
    if (!seekable_) return false;
    seek(0);
    consumed_ = false;
    return true;
  }

  void seek(std::uint64_t offset) {
    position_ = offset;
    consumed_ = offset > 0;
  }

  bool seekable() const { return seekable_; }

 private:
  std::size_t read_descriptor(char* into, std::size_t size, const std::atomic<bool>* stop) {
    for (;;) {
      if (stop != nullptr && !seekable_) {
        pollfd ready{fd_, POLLIN, 0};
        const int n = ::poll(&ready, 1, 100);
        if (stop->load()) return 0;
        if (n == 0 || (n < 0 && errno == EINTR)) continue;
      }
      const ssize_t n = seekable_ ? ::pread(fd_, into, size, static_cast<off_t>(position_))
                                  : ::read(fd_, into, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Error(name_ + ": cannot read: " + std::strerror(errno));
      position_ += static_cast<std::uint64_t>(n);
      return static_cast<std::size_t>(n);
    }
  }

  void close() {
    if (owned_ && fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string name_;
  int fd_ = -1;
  bool owned_ = true;
  bool seekable_ = false;
  bool consumed_ = false;
  std::uint64_t position_ = 0;  // of the next read, in a regular file
  std::string ahead_;           // read to find the magic number of an input that cannot seek
  std::size_t ahead_position_ = 0;
};

Error cannot_read_twice(const std::string& name, bool standard_input) {
  if (standard_input) {
    return Error(name +
                 ": standard input cannot be read twice; write it to a file first (for "
                 "example `cat > data.csv`) and give that file's name");
  }
  return Error(name +
               ": this input is a pipe, which cannot be read twice; write it to a file first "
               "and give that file's name");
}

class PlainSource final : public InputSource {
 public:
  PlainSource(std::string name, std::unique_ptr<RawInput> raw, bool standard_input)
      : InputSource(std::move(name), Compression::none),
        raw_(std::move(raw)),
        standard_input_(standard_input) {}

  std::size_t read(char* into, std::size_t size) override {
    std::size_t done = 0;
    while (done < size) {
      const std::size_t n = raw_->read(into + done, size - done, nullptr);
      if (n == 0) break;
      done += n;
    }
    bytes_ += done;
    return done;
  }

  void rewind() override {
    if (!raw_->rewind()) throw cannot_read_twice(name(), standard_input_);
    bytes_ = 0;
  }

  void seek(std::uint64_t offset) override {
    if (!raw_->seekable()) throw Error(name() + ": cannot seek in a pipe or standard input");
    raw_->seek(offset);
  }

  std::uint64_t compressed_bytes_read() const override { return bytes_; }
  std::size_t held_bytes() const override { return 0; }

 private:
  std::unique_ptr<RawInput> raw_;
  bool standard_input_;
  std::uint64_t bytes_ = 0;
};

// The decompressing thread fills blocks from `spare_` and queues them in `ready_`; read() takes
// them in order and hands them back. A failure travels as the last block, so the reader sees
// it where it happened.
class DecompressingSource final : public InputSource {
 public:
  DecompressingSource(std::string name, Compression compression, std::unique_ptr<RawInput> raw,
                      bool standard_input, std::size_t read_ahead_bytes)
      : InputSource(std::move(name), compression),
        ready_limit_(std::max(kMinReadyBlocks, (read_ahead_bytes + kBlockBytes - 1) / kBlockBytes)),
        raw_(std::move(raw)),
        decoder_(make_input_decoder(compression, this->name())),
        standard_input_(standard_input),
        compressed_(kCompressedReadBytes) {
    start();
  }
  ~DecompressingSource() override { stop(); }

  std::size_t read(char* into, std::size_t size) override {
    std::size_t done = 0;
    while (done < size) {
      if (current_.data.empty() && current_position_ == 0 && !take()) break;
      const std::size_t n = std::min(size - done, current_.size - current_position_);
      std::memcpy(into + done, current_.data.data() + current_position_, n);
      done += n;
      current_position_ += n;
      if (current_position_ == current_.size) {
        const bool last = current_.last;
        give_back();
        if (last) {
          finished_ = true;
          break;
        }
      }
    }
    consumed_ = consumed_ || done > 0;
    return done;
  }

  void rewind() override {
    if (!consumed_) return;
    stop();
    if (!raw_->rewind()) throw cannot_read_twice(name(), standard_input_);
    decoder_->reset();
    consumed_ = false;
    start();
  }

  void seek(std::uint64_t /*offset*/) override {
    throw Error(name() + ": cannot seek in " + compression_name(compression()) + " data");
  }

  std::uint64_t compressed_bytes_read() const override { return compressed_bytes_.load(); }
  std::size_t held_bytes() const override {
    return (ready_limit_ + 2) * kBlockBytes + compressed_.size();
  }

 private:
  struct Block {
    std::vector<char> data;
    std::size_t size = 0;
    bool last = false;
    std::exception_ptr error;
  };

  void start() {
    stopping_ = false;
    finished_ = false;
    ready_.clear();
    current_ = Block{};
    current_position_ = 0;
    compressed_bytes_ = 0;
    worker_ = std::thread([this] { run(); });
  }

  void stop() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  // The next block into current_; false at the end. Rethrows the thread's failure.
  bool take() {
    if (finished_) return false;
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty(); });
    current_ = std::move(ready_.front());
    ready_.pop_front();
    lock.unlock();
    changed_.notify_all();
    current_position_ = 0;
    if (current_.error) {
      finished_ = true;
      std::rethrow_exception(current_.error);
    }
    if (current_.size == 0 && current_.last) {
      finished_ = true;
      return false;
    }
    return true;
  }

  void give_back() {
    {
      const std::lock_guard lock(mutex_);
      spare_.push_back(std::move(current_.data));
    }
    current_ = Block{};
    current_position_ = 0;
  }

  void run() {
    std::uint64_t offset = 0;  // of compressed_[in_begin]
    std::size_t in_begin = 0;
    std::size_t in_end = 0;
    bool eof = false;
    for (;;) {
      Block block;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || ready_.size() < ready_limit_; });
        if (stopping_) return;
        if (!spare_.empty()) {
          block.data = std::move(spare_.back());
          spare_.pop_back();
        }
      }
      try {
        block.data.resize(kBlockBytes);
        char* out = block.data.data();
        char* const out_end = out + block.data.size();
        bool done = false;
        while (out < out_end) {
          if (in_begin == in_end && !eof) {
            const std::size_t n = raw_->read(compressed_.data(), compressed_.size(), &stopping_);
            if (stopping_.load()) return;
            in_begin = 0;
            in_end = n;
            eof = n == 0;
          }
          const char* in = compressed_.data() + in_begin;
          const bool moved =
              decoder_->decode(in, compressed_.data() + in_end, out, out_end, offset);
          const auto used = static_cast<std::size_t>(in - (compressed_.data() + in_begin));
          in_begin += used;
          offset += used;
          compressed_bytes_ = offset;
          if (!moved && in_begin == in_end && eof) {
            decoder_->finish();
            done = true;
            break;
          }
          if (!moved && in_begin < in_end) {
            throw Error(name() + ": corrupt " + compression_name(compression()) +
                        " data at compressed byte " + std::to_string(offset));
          }
        }
        block.size = static_cast<std::size_t>(out - block.data.data());
        block.last = done;
      } catch (...) {
        block.error = std::current_exception();
        block.last = true;
      }
      const bool last = block.last;
      {
        const std::lock_guard lock(mutex_);
        ready_.push_back(std::move(block));
      }
      changed_.notify_all();
      if (last) return;
    }
  }

  std::size_t ready_limit_;  // blocks decompressed ahead at most
  std::unique_ptr<RawInput> raw_;
  std::unique_ptr<InputDecoder> decoder_;
  bool standard_input_;
  std::vector<char> compressed_;  // the worker's read buffer
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::atomic<bool> stopping_{false};
  std::deque<Block> ready_;
  std::vector<std::vector<char>> spare_;
  std::atomic<std::uint64_t> compressed_bytes_{0};
  // The reader's side.
  Block current_;
  std::size_t current_position_ = 0;
  bool finished_ = false;
  bool consumed_ = false;
};

}  // namespace

const char* compression_name(Compression compression) {
  switch (compression) {
    case Compression::none:
      return "plain";
    case Compression::gzip:
      return "gzip";
    case Compression::zstd:
      return "zstd";
  }
  return "?";
}

bool is_standard_input(const std::filesystem::path& path) { return path.native() == "-"; }

std::string input_name(const std::filesystem::path& path) {
  return is_standard_input(path) ? "<stdin>" : path.string();
}

Compression file_compression(const std::filesystem::path& path) {
  if (is_standard_input(path)) return Compression::none;
  // Only a regular file is opened: opening a named pipe would wait for its writer and, closed
  // again, throw away what the writer sent.
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode) && !S_ISDIR(info.st_mode)) {
    return Compression::none;
  }
  RawInput raw(path, path.string());
  return raw.seekable() ? raw.peek_compression() : Compression::none;
}

InputSource::~InputSource() = default;

namespace {

// The source reading an input already opened as `raw`; `compression` is raw's.
std::unique_ptr<InputSource> source_of(std::unique_ptr<RawInput> raw, Compression compression,
                                       const std::filesystem::path& path,
                                       std::size_t read_ahead_bytes) {
  std::string name = input_name(path);
  const bool standard_input = is_standard_input(path);
  if (compression == Compression::none) {
    return std::make_unique<PlainSource>(std::move(name), std::move(raw), standard_input);
  }
  return std::make_unique<DecompressingSource>(std::move(name), compression, std::move(raw),
                                               standard_input, read_ahead_bytes);
}

}  // namespace

std::unique_ptr<InputSource> InputSource::open(const std::filesystem::path& path,
                                               std::size_t read_ahead_bytes) {
  auto raw = std::make_unique<RawInput>(path, input_name(path));
  const Compression compression = raw->peek_compression();
  return source_of(std::move(raw), compression, path, read_ahead_bytes);
}

struct InputText::Storage {
  std::optional<MappedFile> mapped;
  struct Free {
    void operator()(char* bytes) const { std::free(bytes); }
  };
  std::unique_ptr<char, Free> buffer;
};

InputText::InputText(const std::filesystem::path& path) : storage_(std::make_unique<Storage>()) {
  // Opened once: a named pipe opened a second time would wait for a writer that has gone.
  auto raw = std::make_unique<RawInput>(path, input_name(path));
  const Compression compression = raw->peek_compression();
  if (!is_standard_input(path) && raw->seekable() && compression == Compression::none) {
    raw.reset();
    storage_->mapped.emplace(path);
    data_ = storage_->mapped->data();
    size_ = storage_->mapped->size();
    return;
  }
  const std::unique_ptr<InputSource> source = source_of(std::move(raw), compression, path, 0);
  compression_ = source->compression();
  // realloc grows a large buffer by remapping its pages, without copying them.
  std::size_t capacity = std::size_t{4} << 20;
  std::size_t size = 0;
  char* bytes = static_cast<char*>(std::malloc(capacity + MappedFile::kPadding));
  if (bytes == nullptr) throw std::bad_alloc();
  storage_->buffer.reset(bytes);
  for (;;) {
    if (size == capacity) {
      capacity *= 2;
      bytes = static_cast<char*>(std::realloc(bytes, capacity + MappedFile::kPadding));
      if (bytes == nullptr) throw std::bad_alloc();
      static_cast<void>(storage_->buffer.release());
      storage_->buffer.reset(bytes);
    }
    const std::size_t n = source->read(bytes + size, capacity - size);
    if (n == 0) break;
    size += n;
  }
  std::memset(bytes + size, 0, MappedFile::kPadding);
  data_ = bytes;
  size_ = size;
}

InputText::~InputText() = default;

}  // namespace shardprop::detail
