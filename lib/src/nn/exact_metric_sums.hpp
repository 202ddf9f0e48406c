// The exact counterpart of MetricSums: each of its sums held as an ExactSum, so metrics summed
// over rows split across threads or processes in any way, merged in any order, give the same bits.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "base/exact_sum.hpp"
#include "nn/loss.hpp"

namespace shardprop::detail {

class ExactMetricSums {
 public:
  // loss, correct, predictions, squared_error, outputs: ExactSum::serialize() of each, in order.
  static constexpr std::size_t kSerializedWords = 5 * ExactSum::kSerializedWords;

  // Adds each of the five sums exactly (the values in `sums` were rounded where they were made).
  void add(const MetricSums& sums);
  void merge(const ExactMetricSums& other);
  // Each sum rounded once to the nearest double.
  MetricSums value() const;

  std::array<std::uint64_t, kSerializedWords> serialize() const;
  // Throws Error if `words` is not what serialize() writes.
  static ExactMetricSums deserialize(std::span<const std::uint64_t, kSerializedWords> words);

 private:
  ExactSum loss_, correct_, predictions_, squared_error_, outputs_;
};

}  // namespace shardprop::detail
