// A stream over an in-memory dataset, handed out `chunk_rows` rows at a time (optionally only
// rows [begin, end) of it): streamed code checked against in-memory results.
#pragma once

#include <algorithm>
#include <cstdint>

#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::test {

class ChunkedDataset final : public DataStream {
 public:
  ChunkedDataset(const Dataset& data, std::int64_t chunk_rows)
      : ChunkedDataset(data, chunk_rows, 0, data.rows) {}
  ChunkedDataset(const Dataset& data, std::int64_t chunk_rows, std::int64_t begin, std::int64_t end)
      : data_(data), chunk_rows_(chunk_rows), begin_(begin), end_(end), next_row_(begin) {}

  void rewind() override { next_row_ = begin_; }
  bool next(Dataset& chunk) override {
    if (next_row_ >= end_) return false;
    const std::int64_t rows = std::min(chunk_rows_, end_ - next_row_);
    chunk = Dataset{};
    chunk.rows = rows;
    chunk.feature_count = data_.feature_count;
    chunk.target_width = data_.target_width;
    chunk.class_names = data_.class_names;
    const auto f = data_.features.begin() + next_row_ * data_.feature_count;
    chunk.features.assign(f, f + rows * data_.feature_count);
    const auto t = data_.targets.begin() + next_row_ * data_.target_width;
    chunk.targets.assign(t, t + rows * data_.target_width);
    next_row_ += rows;
    return true;
  }

 private:
  const Dataset& data_;
  std::int64_t chunk_rows_, begin_, end_;
  std::int64_t next_row_;
};

}  // namespace shardprop::test
