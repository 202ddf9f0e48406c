// The textbook perceptron: one layer with a sign output, trained by the perceptron rule
// w ← w + η (t − sign(w·x + b)) x on targets ±1. Kept separate from the gradient-based
// trainer because its update is not a gradient of a differentiable loss.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "shardprop/dataset.hpp"

namespace shardprop {

class Perceptron {
 public:
  explicit Perceptron(int inputs, float learning_rate = 1.0f);

  // +1 or −1 (sign(0) is taken as +1).
  float predict(std::span<const float> x) const;
  // One pass in dataset order; targets must be ±1. Returns the number of mistakes made.
  std::int64_t train_epoch(const Dataset& data);

  std::span<const float> weights() const { return weights_; }
  float bias() const { return bias_; }

 private:
  std::vector<float> weights_;
  float bias_ = 0.0f;
  float learning_rate_;
};

}  // namespace shardprop
