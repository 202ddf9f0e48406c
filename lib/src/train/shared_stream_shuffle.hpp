// StreamShuffler's shuffle when the stream is spread over ranks. Every rank follows the buffer
// over the whole's row indices (the draws depend only on seed, epoch and index, so all ranks
// see the same buffer), while each rank holds the data of only the rows it read itself. A row
// that leaves is handed to emit with its data on the rank that holds it, with nullptr on the
// others; the row exchange then moves it to the rank that trains on it. With one rank the rows
// leave in exactly StreamShuffler's order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/aligned.hpp"
#include "base/rng.hpp"

namespace shardprop::detail {

class SharedStreamShuffle {
 public:
  explicit SharedStreamShuffle(int row_floats) : row_floats_(row_floats) {}

  // Starts an epoch with room for `capacity` rows (0: rows pass through in order); this rank
  // reads rows [first_row, first_row + rows) of the whole.
  void begin(std::int64_t capacity, std::uint64_t seed, std::uint64_t epoch, std::int64_t first_row,
             std::int64_t rows) {
    capacity_ = capacity;
    seed_ = seed;
    epoch_ = epoch;
    first_row_ = first_row;
    end_row_ = first_row + rows;
    buffered_ = 0;
    slots_.assign(static_cast<std::size_t>(std::max<std::int64_t>(capacity, 1)), 0);
    const std::size_t floats = static_cast<std::size_t>(std::max<std::int64_t>(capacity, 1)) *
                               static_cast<std::size_t>(row_floats_);
    if (data_.size() < floats) data_.assign(floats, 0.0f);
  }

  bool holds(std::int64_t row) const { return row >= first_row_ && row < end_row_; }

  // Row `row` of the whole arrives (every rank calls this for every row, in order). On the rank
  // that holds it, read(destination) writes its data. emit(row, data or nullptr) gets each row
  // that leaves.
  template <class Read, class Emit>
  void push(std::int64_t row, Read&& read, Emit&& emit) {
    if (capacity_ == 0) {
      float* staging = slot(0);
      if (holds(row)) read(staging);
      emit(row, holds(row) ? staging : nullptr);
      return;
    }
    std::int64_t at = 0;
    if (buffered_ < capacity_) {
      at = buffered_++;
    } else {
      at = static_cast<std::int64_t>(
          random_bits(seed_, RngPurpose::stream_shuffle, epoch_, static_cast<std::uint64_t>(row)) %
          static_cast<std::uint64_t>(capacity_));
      const std::int64_t leaving = slots_[static_cast<std::size_t>(at)];
      emit(leaving, holds(leaving) ? slot(at) : nullptr);
    }
    slots_[static_cast<std::size_t>(at)] = row;
    if (holds(row)) read(slot(at));
  }

  // The buffered rows leave in the order StreamShuffler::drain draws.
  template <class Emit>
  void drain(Emit&& emit) {
    for (std::int64_t i = buffered_ - 1; i > 0; --i) {
      const auto j = static_cast<std::int64_t>(
          random_bits(seed_, RngPurpose::stream_drain, epoch_, static_cast<std::uint64_t>(i)) %
          static_cast<std::uint64_t>(i + 1));
      auto& a = slots_[static_cast<std::size_t>(i)];
      auto& b = slots_[static_cast<std::size_t>(j)];
      if (holds(a) || holds(b)) std::swap_ranges(slot(i), slot(i) + row_floats_, slot(j));
      std::swap(a, b);
    }
    for (std::int64_t i = 0; i < buffered_; ++i) {
      const std::int64_t row = slots_[static_cast<std::size_t>(i)];
      emit(row, holds(row) ? slot(i) : nullptr);
    }
    buffered_ = 0;
  }

 private:
  float* slot(std::int64_t i) {
    return data_.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(row_floats_);
  }

  int row_floats_;
  std::int64_t capacity_ = 0;
  std::uint64_t seed_ = 0, epoch_ = 0;
  std::int64_t first_row_ = 0, end_row_ = 0;
  std::int64_t buffered_ = 0;
  std::vector<std::int64_t> slots_;  // the whole's row index in each buffer slot
  AlignedFloats data_;               // the slots' data, for the rows this rank holds
};

}  // namespace shardprop::detail
