// gzip through ISA-L's igzip (members restarted at each end) and zstd through
// ZSTD_decompressStream (which runs on across frames by itself).
#include "data/input_decoder.hpp"

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

Error truncated(const std::string& name, const char* format) {
  return Error(name + ": " + format + " data ends early: the file is truncated");
}

Error corrupt(const std::string& name, const char* format, std::uint64_t offset,
              const std::string& reason) {
  return Error(name + ": corrupt " + format + " data at compressed byte " + std::to_string(offset) +
               ": " + reason);
}

// gzip through ISA-L's igzip: the wrapper parsed and its CRC-32 and length checked (ISAL_GZIP), a
// member restarted at each end. igzip inflates about three times as fast as zlib.
class GzipDecoder final : public InputDecoder {
 public:
  explicit GzipDecoder(std::string name) : name_(std::move(name)) { reset(); }

  bool decode(const char*& in, const char* in_end, char*& out, char* out_end,
              std::uint64_t offset) override {
    bool moved = false;
    while (out < out_end) {
      if (member_done_) {
        if (in == in_end) break;  // another member may follow, or the input ends here
        // What follows a member is another, which starts with the magic bytes 1f 8b.
        const bool magic = static_cast<unsigned char>(in[0]) == 0x1f &&
                           (in_end - in < 2 || static_cast<unsigned char>(in[1]) == 0x8b);
        if (!magic)
          throw corrupt(name_, "gzip", offset,
                        "bytes after the last member that are not "
                        "another gzip member");
        start_member();
      }
      // igzip's counts are 32-bit: feed at most 1 GiB at a time.
      constexpr std::size_t kMax = std::size_t{1} << 30;
      const std::size_t in_size =
          std::min<std::size_t>(static_cast<std::size_t>(in_end - in), kMax);
      const std::size_t out_size =
          std::min<std::size_t>(static_cast<std::size_t>(out_end - out), kMax);
      state_->next_in = reinterpret_cast<std::uint8_t*>(const_cast<char*>(in));
      state_->avail_in = static_cast<std::uint32_t>(in_size);
      state_->next_out = reinterpret_cast<std::uint8_t*>(out);
      state_->avail_out = static_cast<std::uint32_t>(out_size);
      const int status = isal_inflate(state_.get());
      const std::size_t used = in_size - state_->avail_in;
      const std::size_t made = out_size - state_->avail_out;
      in += used;
      out += made;
      offset += used;
      if (used + made > 0) {
        moved = true;
        started_ = true;
      }
      if (status < 0) throw corrupt(name_, "gzip", offset, reason(status));
      if (state_->block_state == ISAL_BLOCK_FINISH) {
        member_done_ = true;
        continue;
      }
      if (used + made == 0) break;  // no progress possible without more input
    }
    return moved;
  }

  void finish() const override {
    if (started_ && !member_done_) throw truncated(name_, "gzip");
  }

  void reset() override {
    start_member();
    member_done_ = false;
    started_ = false;
  }

 private:
  void start_member() {
    isal_inflate_init(state_.get());
    state_->crc_flag = ISAL_GZIP;
    member_done_ = false;
  }

  static std::string reason(int status) {
    switch (status) {
      case ISAL_INVALID_BLOCK:
        return "invalid deflate block";
      case ISAL_INVALID_SYMBOL:
        return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK:
        return "invalid distance too far back";
      case ISAL_INVALID_WRAPPER:
        return "incorrect header check";
      case ISAL_UNSUPPORTED_METHOD:
        return "unknown compression method";
      case ISAL_INCORRECT_CHECKSUM:
        return "incorrect data check";
      default:
        return "igzip error " + std::to_string(status);
    }
  }

  std::string name_;
  // About 20 KB of Huffman tables: on the heap, not on a caller's stack.
  std::unique_ptr<inflate_state> state_ = std::make_unique<inflate_state>();
  bool member_done_ = false;
  bool started_ = false;
};

class ZstdDecoder final : public InputDecoder {
 public:
  explicit ZstdDecoder(std::string name) : name_(std::move(name)), stream_(ZSTD_createDStream()) {
    if (stream_ == nullptr)
      throw Error(name_ + ": cannot start zstd decompression (out of memory)");
    reset();
  }
  ~ZstdDecoder() override { ZSTD_freeDStream(stream_); }
  ZstdDecoder(const ZstdDecoder&) = delete;
  ZstdDecoder& operator=(const ZstdDecoder&) = delete;

  bool decode(const char*& in, const char* in_end, char*& out, char* out_end,
              std::uint64_t offset) override {
    bool moved = false;
    while (out < out_end) {
      ZSTD_inBuffer source{in, static_cast<std::size_t>(in_end - in), 0};
      ZSTD_outBuffer target{out, static_cast<std::size_t>(out_end - out), 0};
      const std::size_t hint = ZSTD_decompressStream(stream_, &target, &source);
      if (ZSTD_isError(hint)) {
        throw corrupt(name_, "zstd", offset + source.pos, ZSTD_getErrorName(hint));
      }
      in += source.pos;
      out += target.pos;
      offset += source.pos;
      if (source.pos + target.pos == 0) break;
      // 0: a frame is complete and flushed; more input starts another frame.
      frame_done_ = hint == 0;
      moved = true;
    }
    return moved;
  }

  void finish() const override {
    if (!frame_done_) throw truncated(name_, "zstd");
  }

  void reset() override {
    ZSTD_DCtx_reset(stream_, ZSTD_reset_session_only);
    frame_done_ = false;
  }

 private:
  std::string name_;
  ZSTD_DStream* stream_;
  bool frame_done_ = false;
};

}  // namespace

std::unique_ptr<InputDecoder> make_input_decoder(Compression compression, std::string name) {
  if (compression == Compression::zstd) return std::make_unique<ZstdDecoder>(std::move(name));
  return std::make_unique<GzipDecoder>(std::move(name));
}

}  // namespace shardprop::detail
