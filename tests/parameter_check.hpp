// Element-wise comparisons of a model's parameters (or buffers laid out like them) for the
// training tests: within a tolerance over the trained tensors, or bit for bit. Knows the
// library's public Model and nothing of its internals.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "shardprop/model.hpp"

namespace shardprop::test {

// A dense bias feeding a batch norm has a zero gradient in exact arithmetic (the norm subtracts
// the batch mean), so its float gradient is rounding noise: Adam turns noise of any size into
// steps of the full learning rate, and momentum buffers of it agree in no digit. Its effect on
// the outputs is removed by the norm too, so it is left out of element-wise comparisons.
inline bool gradient_is_noise(const shardprop::Model& model, const shardprop::TensorInfo& t) {
  if (t.role != shardprop::TensorRole::bias || !t.name.ends_with(".bias")) return false;
  const std::size_t k = std::stoul(t.name);
  const std::vector<shardprop::LayerSpec>& layers = model.spec().layers;
  return std::holds_alternative<shardprop::DenseSpec>(layers[k]) && k + 1 < layers.size() &&
         std::holds_alternative<shardprop::BatchNormSpec>(layers[k + 1]);
}

// Every trained element of `got` agrees with `want` (laid out like the model's parameters):
// within `relative`, or within `floor` times the largest |want| of its tensor.
template <class T>
void check_trained(const shardprop::Model& layout, std::span<const float> got,
                   const std::vector<T>& want, double relative, double floor,
                   const std::string& what) {
  int mismatches = 0;
  for (const shardprop::TensorInfo& t : layout.tensors()) {
    if (!t.trained() || gradient_is_noise(layout, t)) continue;
    double scale = 0.0;
    for (std::size_t i = t.offset; i < t.offset + t.size; ++i) {
      scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
    }
    for (std::size_t i = t.offset; i < t.offset + t.size; ++i) {
      const double expected = static_cast<double>(want[i]);
      const auto by_relative = Catch::Matchers::WithinRel(expected, relative);
      const auto by_floor = Catch::Matchers::WithinAbs(expected, floor * scale);
      const auto close = by_relative || by_floor;
      if (!close.match(got[i])) {
        const std::string& name = t.name;
        const std::size_t element = i - t.offset;
        CAPTURE(what, name, element);
        CHECK_THAT(got[i], close);
        if (++mismatches > 5) FAIL("more than 5 elements of " << what << " differ");
      }
    }
  }
  CHECK(mismatches == 0);
}

// How many trained elements moved by more than 1e-4 from `initial`: a comparison of two models
// that never moved would prove nothing.
inline int moved_elements(const shardprop::Model& layout, std::span<const float> now,
                          const shardprop::Model& initial) {
  int moved = 0;
  for (const shardprop::TensorInfo& t : layout.tensors()) {
    if (!t.trained() || gradient_is_noise(layout, t)) continue;
    for (std::size_t i = t.offset; i < t.offset + t.size; ++i) {
      if (std::fabs(now[i] - initial.parameters()[i]) > 1e-4f) ++moved;
    }
  }
  return moved;
}

inline int trained_elements(const shardprop::Model& layout) {
  int count = 0;
  for (const shardprop::TensorInfo& t : layout.tensors()) {
    if (t.trained() && !gradient_is_noise(layout, t)) count += static_cast<int>(t.size);
  }
  return count;
}

inline bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

inline std::vector<float> copy_of(std::span<const float> values) {
  return {values.begin(), values.end()};
}

}  // namespace shardprop::test
