// Non-owning row-major matrix views: {data, rows, cols, stride}.
#pragma once

#include <cstddef>

namespace shardprop::detail {

struct ConstMatrix {
  const float* data = nullptr;
  int rows = 0;
  int cols = 0;
  int stride = 0;
  const float* row(int r) const { return data + static_cast<std::ptrdiff_t>(r) * stride; }
};

struct Matrix {
  float* data = nullptr;
  int rows = 0;
  int cols = 0;
  int stride = 0;
  float* row(int r) const { return data + static_cast<std::ptrdiff_t>(r) * stride; }
  operator ConstMatrix() const { return {data, rows, cols, stride}; }
};

}  // namespace shardprop::detail
