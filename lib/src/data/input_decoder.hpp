// Streaming decompression of gzip (zlib's inflate, one member after another, as pigz and bgzip
// write) and zstd (frame after frame), from one buffer into another. Leaves out reading files
// and threads (input_source.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "data/input_source.hpp"

namespace shardprop::detail {

class InputDecoder {
 public:
  virtual ~InputDecoder() = default;
  // Decompresses from [in, in_end) into [out, out_end), advancing both pointers; returns whether
  // either moved. `offset` is the compressed offset of `in`, for messages. Throws Error "NAME:
  // corrupt gzip data at compressed byte N: reason".
  virtual bool decode(const char*& in, const char* in_end, char*& out, char* out_end,
                      std::uint64_t offset) = 0;
  // At the end of the input: throws Error "NAME: gzip data ends early: the file is truncated"
  // unless the last member or frame is complete.
  virtual void finish() const = 0;
  // Ready for a new input from its first byte.
  virtual void reset() = 0;
};

// REQUIRES: compression is gzip or zstd. `name` is the input's name in messages.
std::unique_ptr<InputDecoder> make_input_decoder(Compression compression, std::string name);

}  // namespace shardprop::detail
