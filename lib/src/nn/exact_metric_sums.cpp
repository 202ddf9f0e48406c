// Adding, merging and serializing the five exact metric sums.
#include "nn/exact_metric_sums.hpp"

#include <algorithm>

namespace shardprop::detail {

void ExactMetricSums::add(const MetricSums& sums) {
  loss_.add(sums.loss);
  correct_.add(sums.correct);
  predictions_.add(sums.predictions);
  squared_error_.add(sums.squared_error);
  outputs_.add(sums.outputs);
}

void ExactMetricSums::merge(const ExactMetricSums& other) {
  loss_.merge(other.loss_);
  correct_.merge(other.correct_);
  predictions_.merge(other.predictions_);
  squared_error_.merge(other.squared_error_);
  outputs_.merge(other.outputs_);
}

MetricSums ExactMetricSums::value() const {
  MetricSums sums;
  sums.loss = loss_.value();
  sums.correct = correct_.value();
  sums.predictions = predictions_.value();
  sums.squared_error = squared_error_.value();
  sums.outputs = outputs_.value();
  return sums;
}

std::array<std::uint64_t, ExactMetricSums::kSerializedWords> ExactMetricSums::serialize() const {
  std::array<std::uint64_t, kSerializedWords> words{};
  auto out = words.begin();
  for (const ExactSum* sum : {&loss_, &correct_, &predictions_, &squared_error_, &outputs_}) {
    const auto sum_words = sum->serialize();
    out = std::copy(sum_words.begin(), sum_words.end(), out);
  }
  return words;
}

ExactMetricSums ExactMetricSums::deserialize(
    std::span<const std::uint64_t, kSerializedWords> words) {
  constexpr std::size_t kWords = ExactSum::kSerializedWords;
  ExactMetricSums sums;
  ExactSum* const targets[] = {&sums.loss_, &sums.correct_, &sums.predictions_,
                               &sums.squared_error_, &sums.outputs_};
  for (std::size_t i = 0; i < 5; ++i) {
    *targets[i] = ExactSum::deserialize(words.subspan(i * kWords).first<kWords>());
  }
  return sums;
}

}  // namespace shardprop::detail
