// DataStream's out-of-line destructor anchors its vtable in the library; for_each_chunk reads
// one chunk ahead of the work.
#include "shardprop/data_stream.hpp"

#include <tbb/task_group.h>

#include <exception>
#include <utility>

namespace shardprop {

DataStream::~DataStream() = default;

void for_each_chunk(DataStream& stream, const std::function<void(const Dataset& chunk)>& work) {
  stream.rewind();
  Dataset current;
  Dataset upcoming;
  if (!stream.next(current)) return;
  for (;;) {
    bool more = false;
    tbb::task_group reading;
    reading.run([&] { more = stream.next(upcoming); });
    try {
      work(current);
    } catch (...) {
      // The read must end before its chunk and the stream go; its own error, if any, is the
      // lesser news.
      try {
        reading.wait();
      } catch (...) {
      }
      throw;
    }
    reading.wait();
    if (!more) return;
    std::swap(current, upcoming);
  }
}

}  // namespace shardprop
