// The shuffle of a streamed epoch: rows pass through a buffer of `capacity` rows; once it is
// full, each incoming row replaces a uniformly drawn buffered row, which leaves; at the end the
// buffered rows leave in a random order. Every draw is a pure function of (seed, epoch, row
// index), so the order does not depend on how the stream is chunked. Capacity 0 passes rows
// through in stream order. Leaves out what happens to the rows that leave (the emit callback).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/aligned.hpp"
#include "base/rng.hpp"

namespace shardprop::detail {

class StreamShuffler {
 public:
  // A row is `features` floats then `targets` floats.
  StreamShuffler(int features, int targets) : features_(features), targets_(targets) {}

  // Starts an epoch with room for `capacity` rows (the buffer grows once and is kept).
  void begin(std::int64_t capacity, std::uint64_t seed, std::uint64_t epoch) {
    capacity_ = capacity;
    seed_ = seed;
    epoch_ = epoch;
    buffered_ = 0;
    incoming_ = 0;
    kept_ = 0;
    const std::size_t floats = static_cast<std::size_t>(capacity) * row_floats();
    if (buffer_.size() < floats) buffer_.assign(floats, 0.0f);
  }

  // One incoming row (x: features, t: targets); emit(x, t) receives each row that leaves.
  template <class Emit>
  void push(const float* x, const float* t, Emit&& emit) {
    const std::uint64_t index = incoming_++;
    if (capacity_ == 0) {
      emit(x, t);
      return;
    }
    float* slot = nullptr;
    if (buffered_ < capacity_) {
      slot = row(buffered_++);
    } else {
      const std::uint64_t j = random_bits(seed_, RngPurpose::stream_shuffle, epoch_, index) %
                              static_cast<std::uint64_t>(capacity_);
      slot = row(static_cast<std::int64_t>(j));
      emit(slot, slot + features_);
    }
    std::copy_n(x, features_, slot);
    std::copy_n(t, targets_, slot + features_);
  }

  // Rows that the last drain left in the buffer in stream order: all the rows of its epoch, when
  // none left before the drain (the stream fitted in the buffer); 0 otherwise.
  std::int64_t kept_rows() const { return kept_; }

  // Starts an epoch over the kept rows, as if the same rows were pushed again: filling the
  // buffer puts row i in slot i, so the rows leave in the order a new pass would give.
  void begin_kept(std::uint64_t seed, std::uint64_t epoch) {
    seed_ = seed;
    epoch_ = epoch;
    buffered_ = kept_;
    incoming_ = static_cast<std::uint64_t>(kept_);
  }

  // The rows still buffered leave, in an order drawn by (seed, epoch): a Fisher-Yates shuffle
  // of the slots. It permutes slot numbers rather than rows, so each row is read once, where it
  // lies, instead of being swapped through the buffer.
  template <class Emit>
  void drain(Emit&& emit) {
    order_.resize(static_cast<std::size_t>(buffered_));
    for (std::int64_t i = 0; i < buffered_; ++i) order_[static_cast<std::size_t>(i)] = i;
    for (std::int64_t i = buffered_ - 1; i > 0; --i) {
      const std::uint64_t j =
          random_bits(seed_, RngPurpose::stream_drain, epoch_, static_cast<std::uint64_t>(i)) %
          static_cast<std::uint64_t>(i + 1);
      std::swap(order_[static_cast<std::size_t>(i)], order_[static_cast<std::size_t>(j)]);
    }
    // Slot i still holds the i-th row pushed: without a replacement, the whole stream.
    kept_ = static_cast<std::uint64_t>(buffered_) == incoming_ ? buffered_ : 0;
    for (const std::int64_t slot : order_) emit(row(slot), row(slot) + features_);
    buffered_ = 0;
  }

  // Rows pushed since begin().
  std::int64_t rows_seen() const { return static_cast<std::int64_t>(incoming_); }

 private:
  std::size_t row_floats() const { return static_cast<std::size_t>(features_ + targets_); }
  float* row(std::int64_t i) { return buffer_.data() + static_cast<std::size_t>(i) * row_floats(); }

  int features_, targets_;
  std::int64_t capacity_ = 0;
  std::uint64_t seed_ = 0, epoch_ = 0;
  std::int64_t buffered_ = 0;
  std::uint64_t incoming_ = 0;
  std::int64_t kept_ = 0;
  AlignedFloats buffer_;
  std::vector<std::int64_t> order_;  // drain's slot order
};

}  // namespace shardprop::detail
