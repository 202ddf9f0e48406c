// The streamed epoch's shuffle (train/stream_shuffler.hpp): every row leaves exactly once, the
// order is a function of (seed, epoch) alone, and capacity 0 keeps stream order.
#include "train/stream_shuffler.hpp"

#include "base/rng.hpp"
#include "train/shared_stream_shuffle.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

// Pushes rows 0..n−1 (feature = index, target = −index) and returns the order they leave in.
std::vector<float> order_of(std::int64_t n, std::int64_t capacity, std::uint64_t seed,
                            std::uint64_t epoch) {
  shardprop::detail::StreamShuffler shuffler(1, 1);
  shuffler.begin(capacity, seed, epoch);
  std::vector<float> left;
  auto emit = [&](const float* x, const float* t) {
    CHECK(*t == -*x);  // a row's target travels with its features
    left.push_back(*x);
  };
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = static_cast<float>(i), t = -x;
    shuffler.push(&x, &t, emit);
  }
  CHECK(shuffler.rows_seen() == n);
  shuffler.drain(emit);
  return left;
}

}  // namespace

TEST_CASE("the stream shuffler lets every row out once, in an order set by seed and epoch",
          "[stream]") {
  const std::int64_t capacity = GENERATE(1, 10, 1000, 5000);
  CAPTURE(capacity);
  const std::vector<float> order = order_of(1000, capacity, 3, 0);
  std::vector<float> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<float> expected(1000);
  for (int i = 0; i < 1000; ++i) expected[i] = static_cast<float>(i);
  CHECK(sorted == expected);
  CHECK(order_of(1000, capacity, 3, 0) == order);  // a pure function of its inputs
  if (capacity > 1) {
    CHECK(order != expected);
    CHECK(order_of(1000, capacity, 3, 1) != order);  // another epoch, another order
    CHECK(order_of(1000, capacity, 4, 0) != order);  // another seed, another order
  }
}

TEST_CASE("the stream shuffler with capacity 0 keeps stream order", "[stream]") {
  const std::vector<float> order = order_of(100, 0, 3, 0);
  CHECK(std::is_sorted(order.begin(), order.end()));
  CHECK(order.size() == 100);
}

namespace {

// The naive reference: the same buffer with the rows themselves swapped through it at the end
// (Fisher-Yates over the buffered rows, then out in buffer order).
std::vector<float> reference_order(std::int64_t n, std::int64_t capacity, std::uint64_t seed,
                                   std::uint64_t epoch) {
  using shardprop::detail::random_bits;
  using shardprop::detail::RngPurpose;
  std::vector<float> buffer, left;
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = static_cast<float>(i);
    if (static_cast<std::int64_t>(buffer.size()) < capacity) {
      buffer.push_back(x);
      continue;
    }
    const std::uint64_t j =
        random_bits(seed, RngPurpose::stream_shuffle, epoch, static_cast<std::uint64_t>(i)) %
        static_cast<std::uint64_t>(capacity);
    left.push_back(buffer[j]);
    buffer[j] = x;
  }
  for (std::int64_t i = static_cast<std::int64_t>(buffer.size()) - 1; i > 0; --i) {
    const std::uint64_t j =
        random_bits(seed, RngPurpose::stream_drain, epoch, static_cast<std::uint64_t>(i)) %
        static_cast<std::uint64_t>(i + 1);
    std::swap(buffer[static_cast<std::size_t>(i)], buffer[j]);
  }
  left.insert(left.end(), buffer.begin(), buffer.end());
  return left;
}

}  // namespace

TEST_CASE("the stream shuffler's order is the reference buffer's, row for row", "[stream]") {
  const std::int64_t capacity = GENERATE(1, 10, 1000, 5000);
  const std::uint64_t epoch = GENERATE(0u, 3u);
  CAPTURE(capacity, epoch);
  CHECK(order_of(1000, capacity, 7, epoch) == reference_order(1000, capacity, 7, epoch));
}

TEST_CASE("the shared stream shuffle on one rank lets rows out in the stream shuffler's order",
          "[stream]") {
  // One process trains a StreamPart through StreamShuffler; several ranks share the buffer
  // through SharedStreamShuffle: one rank's shared order must be the shuffler's.
  const std::int64_t capacity = GENERATE(0, 1, 10, 1000, 5000);
  CAPTURE(capacity);
  const std::int64_t n = 1000;
  shardprop::detail::SharedStreamShuffle shared(2);
  shared.begin(capacity, 5, 2, 0, n);
  std::vector<float> left;
  auto emit = [&](std::int64_t row, const float* data) {
    REQUIRE(data != nullptr);
    CHECK(data[0] == static_cast<float>(row));
    CHECK(data[1] == -data[0]);
    left.push_back(data[0]);
  };
  for (std::int64_t row = 0; row < n; ++row) {
    shared.push(
        row,
        [&](float* into) {
          into[0] = static_cast<float>(row);
          into[1] = -into[0];
        },
        emit);
  }
  shared.drain(emit);
  CHECK(left == order_of(n, capacity, 5, 2));
}

TEST_CASE("rows kept from a stream that fitted leave as a new pass over them would", "[stream]") {
  const std::int64_t n = 300;
  const std::int64_t capacity = GENERATE(300, 1000);
  CAPTURE(capacity);
  shardprop::detail::StreamShuffler shuffler(1, 1);
  std::vector<float> left;
  auto emit = [&](const float* x, const float* t) {
    CHECK(*t == -*x);
    left.push_back(*x);
  };
  shuffler.begin(capacity, 3, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const float x = static_cast<float>(i), t = -x;
    shuffler.push(&x, &t, emit);
  }
  shuffler.drain(emit);
  REQUIRE(shuffler.kept_rows() == n);
  for (std::uint64_t epoch = 1; epoch <= 2; ++epoch) {
    left.clear();
    shuffler.begin_kept(3, epoch);
    shuffler.drain(emit);
    CHECK(left == order_of(n, capacity, 3, epoch));
    CHECK(shuffler.kept_rows() == n);
  }
  SECTION("a stream larger than the buffer keeps nothing") {
    shuffler.begin(capacity, 3, 0);
    for (std::int64_t i = 0; i < capacity + 1; ++i) {
      const float x = static_cast<float>(i), t = -x;
      shuffler.push(&x, &t, emit);
    }
    shuffler.drain(emit);
    CHECK(shuffler.kept_rows() == 0);
  }
}
