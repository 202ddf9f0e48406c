// gzip through zlib's inflate (gzip wrapper only, members restarted at each end) and zstd
// through ZSTD_decompressStream (which runs on across frames by itself).
#include "data/input_decoder.hpp"

#include <zlib.h>
#include <zstd.h>

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

class GzipDecoder final : public InputDecoder {
 public:
  explicit GzipDecoder(std::string name) : name_(std::move(name)) {
    // 16 + MAX_WBITS: the gzip wrapper only (with its CRC-32 and length checks).
    if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) {
      throw Error(name_ + ": cannot start gzip decompression (out of memory)");
    }
  }
  ~GzipDecoder() override { inflateEnd(&stream_); }
  GzipDecoder(const GzipDecoder&) = delete;
  GzipDecoder& operator=(const GzipDecoder&) = delete;

  bool decode(const char*& in, const char* in_end, char*& out, char* out_end,
              std::uint64_t offset) override {
    bool moved = false;
    while (out < out_end) {
      if (member_done_) {
        if (in == in_end) break;  // another member may follow, or the input ends here
        inflateReset(&stream_);
        member_done_ = false;
      }
      // zlib's counts are 32-bit: feed at most 1 GiB at a time.
      constexpr std::size_t kMax = std::size_t{1} << 30;
      const std::size_t in_size =
          std::min<std::size_t>(static_cast<std::size_t>(in_end - in), kMax);
      const std::size_t out_size =
          std::min<std::size_t>(static_cast<std::size_t>(out_end - out), kMax);
      stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in));
      stream_.avail_in = static_cast<uInt>(in_size);
      stream_.next_out = reinterpret_cast<Bytef*>(out);
      stream_.avail_out = static_cast<uInt>(out_size);
      const int status = inflate(&stream_, Z_NO_FLUSH);
      const std::size_t used = in_size - stream_.avail_in;
      const std::size_t made = out_size - stream_.avail_out;
      in += used;
      out += made;
      offset += used;
      if (used + made > 0) {
        moved = true;
        started_ = true;
      }
      if (status == Z_STREAM_END) {
        member_done_ = true;
        continue;
      }
      if (status == Z_OK) {
        if (used + made == 0) break;
        continue;
      }
      if (status == Z_BUF_ERROR) break;  // no progress possible without more input
      throw corrupt(name_, "gzip", offset,
                    stream_.msg != nullptr ? stream_.msg : "zlib error " + std::to_string(status));
    }
    return moved;
  }

  void finish() const override {
    if (started_ && !member_done_) throw truncated(name_, "gzip");
  }

  void reset() override {
    inflateReset(&stream_);
    member_done_ = false;
    started_ = false;
  }

 private:
  std::string name_;
  z_stream stream_{};
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
