// SplitStream: a seeded validation split of a stream, decided row by row from the row's index
// alone, so it does not depend on the chunking, the threads or where the stream started.
#include <cmath>
#include <limits>
#include <string>

#include "data/dataset_rows.hpp"
#include "data/row_split.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/error.hpp"

namespace shardprop {

SplitStream::SplitStream(DataStream& source, double fraction, std::uint64_t seed, Part part,
                         std::int64_t first_row)
    : source_(source),
      threshold_(detail::split_threshold(fraction)),
      seed_(seed),
      part_(part),
      first_row_(first_row),
      next_row_(first_row) {}

bool SplitStream::holds(std::int64_t row) const {
  return detail::held_out(seed_, threshold_, row) == (part_ == Part::validation);
}

void SplitStream::rewind() {
  source_.rewind();
  next_row_ = first_row_;
}

bool SplitStream::next(Dataset& chunk) {
  while (source_.next(source_chunk_)) {
    const Dataset& in = source_chunk_;
    chunk.rows = 0;
    chunk.feature_count = in.feature_count;
    chunk.target_width = in.target_width;
    chunk.feature_names = in.feature_names;
    chunk.target_names = in.target_names;
    chunk.class_names = in.class_names;
    chunk.features.clear();  // keeps its capacity from chunk to chunk
    chunk.targets.clear();
    for (std::int64_t r = 0; r < in.rows; ++r, ++next_row_) {
      if (holds(next_row_)) detail::append_row(chunk, in, r);
    }
    if (chunk.rows > 0) return true;
  }
  return false;
}

}  // namespace shardprop
