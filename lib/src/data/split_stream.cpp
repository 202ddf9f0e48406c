// SplitStream: a seeded validation split of a stream, decided row by row from the row's index
// alone, so it does not depend on the chunking, the threads or where the stream started.
#include <cmath>
#include <limits>
#include <string>

#include "base/rng.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

// The hash value below which a row is held out: fraction of the 2^64 range.
std::uint64_t threshold_of(double fraction) {
  if (!(fraction > 0.0 && fraction < 1.0)) {
    throw Error("validation split: the fraction must be in (0, 1), got " +
                std::to_string(fraction));
  }
  return static_cast<std::uint64_t>(std::ldexp(fraction, 64));
}

}  // namespace

SplitStream::SplitStream(DataStream& source, double fraction, std::uint64_t seed, Part part,
                         std::int64_t first_row)
    : source_(source),
      threshold_(threshold_of(fraction)),
      seed_(seed),
      part_(part),
      first_row_(first_row),
      next_row_(first_row) {}

bool SplitStream::holds(std::int64_t row) const {
  const std::uint64_t key =
      detail::random_bits(seed_, detail::RngPurpose::split, 0, static_cast<std::uint64_t>(row));
  return (key < threshold_) == (part_ == Part::validation);
}

std::int64_t SplitStream::count(std::int64_t first, std::int64_t rows) const {
  std::int64_t n = 0;
  for (std::int64_t row = first; row < first + rows; ++row) n += holds(row) ? 1 : 0;
  return n;
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
    chunk.features.clear();
    chunk.targets.clear();
    const auto features = static_cast<std::size_t>(in.feature_count);
    const auto targets = static_cast<std::size_t>(in.target_width);
    for (std::int64_t r = 0; r < in.rows; ++r, ++next_row_) {
      if (!holds(next_row_)) continue;
      const auto row = static_cast<std::size_t>(r);
      chunk.features.insert(chunk.features.end(), in.features.begin() + row * features,
                            in.features.begin() + (row + 1) * features);
      chunk.targets.insert(chunk.targets.end(), in.targets.begin() + row * targets,
                           in.targets.begin() + (row + 1) * targets);
      ++chunk.rows;
    }
    if (chunk.rows > 0) return true;
  }
  return false;
}

}  // namespace shardprop
