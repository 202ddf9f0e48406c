// 64-byte aligned float storage: the flat parameter array, gradient buffers and workspaces
// start on cache-line boundaries so shards never share a line and BLAS gets aligned panels.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace shardprop::detail {

inline constexpr std::size_t kAlignment = 64;

template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() = default;
  template <class U>
  explicit AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = (n * sizeof(T) + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, bytes == 0 ? kAlignment : bytes);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const noexcept {
    return true;
  }
};

using AlignedFloats = std::vector<float, AlignedAllocator<float>>;

// Rounds a float count up so the next block starts on a cache line.
inline constexpr std::size_t pad_to_line(std::size_t floats) {
  constexpr std::size_t per_line = kAlignment / sizeof(float);
  return (floats + per_line - 1) / per_line * per_line;
}

}  // namespace shardprop::detail
