// The perceptron rule, one sample at a time in dataset order.
#include "shardprop/perceptron.hpp"

#include <string>

#include "shardprop/error.hpp"

namespace shardprop {

Perceptron::Perceptron(int inputs, float learning_rate)
    : weights_(inputs > 0 ? static_cast<std::size_t>(inputs) : 0, 0.0f),
      learning_rate_(learning_rate) {
  if (inputs <= 0)
    throw Error("perceptron: inputs must be positive, got " + std::to_string(inputs));
  if (!(learning_rate > 0.0f)) {
    throw Error("perceptron: learning rate must be positive, got " + std::to_string(learning_rate));
  }
}

float Perceptron::predict(std::span<const float> x) const {
  if (x.size() != weights_.size()) {
    throw Error("perceptron: " + std::to_string(x.size()) + " features given, the model has " +
                std::to_string(weights_.size()) + " inputs");
  }
  double sum = bias_;
  for (std::size_t i = 0; i < x.size(); ++i) sum += static_cast<double>(weights_[i]) * x[i];
  return sum >= 0.0 ? 1.0f : -1.0f;
}

std::int64_t Perceptron::train_epoch(const Dataset& data) {
  data.validate();
  if (data.feature_count != static_cast<int>(weights_.size()) || data.target_width != 1) {
    throw Error("perceptron: dataset has " + std::to_string(data.feature_count) + " features and " +
                std::to_string(data.target_width) + " targets per row; the model needs " +
                std::to_string(weights_.size()) + " and 1");
  }
  for (std::int64_t r = 0; r < data.rows; ++r) {
    if (data.targets[r] != 1.0f && data.targets[r] != -1.0f) {
      throw Error("perceptron: target of row " + std::to_string(r) + " is " +
                  std::to_string(data.targets[r]) + "; the perceptron rule needs +1 or -1");
    }
  }
  std::int64_t mistakes = 0;
  for (std::int64_t r = 0; r < data.rows; ++r) {
    const float t = data.targets[r];
    const std::span<const float> x = data.row_features(r);
    const float error = t - predict(x);  // 0, or ±2 on a mistake
    if (error == 0.0f) continue;
    ++mistakes;
    for (std::size_t i = 0; i < x.size(); ++i) weights_[i] += learning_rate_ * error * x[i];
    bias_ += learning_rate_ * error;
  }
  return mistakes;
}

}  // namespace shardprop
