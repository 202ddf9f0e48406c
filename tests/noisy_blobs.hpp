// A small classification dataset for training-run tests: learnable, but not perfectly, so
// losses keep changing from epoch to epoch and differ between seeds.
#pragma once

#include <random>

#include "shardprop/dataset.hpp"

namespace shardprop::test {

// Three noisy classes ("a", "b", "c") around points in 2-D; row i has class i % 3.
inline Dataset noisy_blobs(int rows, unsigned seed) {
  Dataset d;
  d.rows = rows;
  d.feature_count = 2;
  d.target_width = 1;
  d.class_names = {"a", "b", "c"};
  std::mt19937_64 bits(seed);
  std::normal_distribution<float> noise(0.0f, 0.8f);
  for (int i = 0; i < rows; ++i) {
    const int label = i % 3;
    d.features.push_back(static_cast<float>(label) + noise(bits));
    d.features.push_back(static_cast<float>(label % 2) + noise(bits));
    d.targets.push_back(static_cast<float>(label));
  }
  return d;
}

}  // namespace shardprop::test
