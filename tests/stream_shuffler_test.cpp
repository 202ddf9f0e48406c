// The streamed epoch's shuffle (train/stream_shuffler.hpp): every row leaves exactly once, the
// order is a function of (seed, epoch) alone, and capacity 0 keeps stream order.
#include "train/stream_shuffler.hpp"

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
