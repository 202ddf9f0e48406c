// ExactMetricSums: per-shard metric sums added exactly, so any split of the shards across
// processes, merged in any order, gives the same metrics.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "nn/exact_metric_sums.hpp"
#include "nn/loss.hpp"

using shardprop::detail::ExactMetricSums;
using shardprop::detail::MetricSums;

namespace {

bool same_bits(const MetricSums& a, const MetricSums& b) {
  const double x[] = {a.loss, a.correct, a.predictions, a.squared_error, a.outputs};
  const double y[] = {b.loss, b.correct, b.predictions, b.squared_error, b.outputs};
  return std::memcmp(x, y, sizeof x) == 0;
}

}  // namespace

TEST_CASE("exact metric sums do not depend on how shards are split and merged",
          "[exact_sum][determinism]") {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> loss(0.0, 5.0);
  std::vector<MetricSums> shards(64);
  for (MetricSums& m : shards) {
    m.loss = loss(rng) * 1e6;
    m.correct = static_cast<double>(rng() % 100);
    m.predictions = 100.0;
    m.squared_error = loss(rng) * 1e-9;
    m.outputs = 1000.0;
  }
  ExactMetricSums whole;
  for (const MetricSums& m : shards) whole.add(m);
  const MetricSums expected = whole.value();
  CHECK(expected.predictions == 6400.0);
  CHECK(expected.outputs == 64000.0);

  const int parts = GENERATE(2, 3, 5);
  CAPTURE(parts);
  std::shuffle(shards.begin(), shards.end(), rng);
  std::vector<ExactMetricSums> partial(static_cast<std::size_t>(parts));
  for (std::size_t i = 0; i < shards.size(); ++i) partial[rng() % partial.size()].add(shards[i]);
  // Each part travels as words, as it would between processes, and is merged in reverse order.
  ExactMetricSums merged;
  for (auto part = partial.rbegin(); part != partial.rend(); ++part) {
    merged.merge(ExactMetricSums::deserialize(part->serialize()));
  }
  CHECK(same_bits(merged.value(), expected));
  CHECK(merged.serialize() == whole.serialize());
  STATIC_REQUIRE(ExactMetricSums::kSerializedWords == 5 * 68);
}
