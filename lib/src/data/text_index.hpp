// A hash table from texts to int32 values for the one-hot encoder's per-cell lookups: open
// addressing in one flat array and a hash that reads a short text in one or two 8-byte loads.
// A category cell costs one probe in the common case, where std::unordered_map costs a call to
// a byte-at-a-time hash and a pointer chase. Keys are views: the caller keeps their bytes alive.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace shardprop::detail {

class TextIndex {
 public:
  static constexpr std::int32_t kAbsent = -1;

  // Room for `expected` texts before the table grows.
  explicit TextIndex(std::size_t expected = 8) { allocate(capacity_for(expected)); }

  std::size_t size() const { return size_; }

  // The value of `text`, or kAbsent.
  std::int32_t find(std::string_view text) const {
    const Key key = key_of(text);
    for (std::size_t i = key.hash & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.value == kAbsent) return kAbsent;
      if (matches(slot, key, text)) return slot.value;
    }
  }

  // The value of `text`; a text not there yet gets `value` first. REQUIRES: value >= 0.
  std::int32_t insert(std::string_view text, std::int32_t value) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    const Key key = key_of(text);
    for (std::size_t i = key.hash & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.value == kAbsent) {
        slot = {text.data(), text.size(), key.hash, key.head, value};
        ++size_;
        return value;
      }
      if (matches(slot, key, text)) return slot.value;
    }
  }

 private:
  struct Slot {
    const char* data = nullptr;
    std::size_t size = 0;
    std::uint64_t hash = 0;
    std::uint64_t head = 0;  // the first 8 bytes, zero-padded: enough to compare short texts
    std::int32_t value = kAbsent;
  };

  struct Key {
    std::uint64_t hash;
    std::uint64_t head;
  };

  static bool matches(const Slot& slot, const Key& key, std::string_view text) {
    return slot.hash == key.hash && slot.size == text.size() && slot.head == key.head &&
           (text.size() <= 8 || std::memcmp(slot.data + 8, text.data() + 8, text.size() - 8) == 0);
  }

  static std::size_t capacity_for(std::size_t texts) {
    return std::bit_ceil(std::max<std::size_t>(16, texts * 2));
  }

  void allocate(std::size_t capacity) {
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    allocate(old.size() * 2);
    for (const Slot& slot : old) {
      if (slot.value == kAbsent) continue;
      std::size_t i = slot.hash & mask_;
      while (slots_[i].value != kAbsent) i = (i + 1) & mask_;
      slots_[i] = slot;
    }
  }

  // The first min(n, 8) bytes at p as a little-endian word, zero above. Whole loads (they may
  // overlap): a copy of n bytes into a zeroed word would stall the load that reads it back.
  static std::uint64_t first_bytes(const char* p, std::size_t n) {
    if (n >= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, 8);
      return word;
    }
    if (n >= 4) {
      std::uint32_t low, high;
      std::memcpy(&low, p, 4);
      std::memcpy(&high, p + n - 4, 4);
      return std::uint64_t{low} | std::uint64_t{high} << (8 * (n - 4));
    }
    if (n == 0) return 0;
    const auto byte = [p](std::size_t i) {
      return std::uint64_t{static_cast<unsigned char>(p[i])};
    };
    return byte(0) | byte(n / 2) << (8 * (n / 2)) | byte(n - 1) << (8 * (n - 1));
  }

  // 8 bytes at a time, each word mixed by a multiply; the top bits, which every input bit
  // reaches, are folded down for the slot index.
  static Key key_of(std::string_view text) {
    constexpr std::uint64_t kMultiplier = 0x9E3779B97F4A7C15ull;
    const char* p = text.data();
    std::size_t left = text.size();
    const std::uint64_t head = first_bytes(p, left);
    std::uint64_t hash = (text.size() * kMultiplier ^ head) * kMultiplier;
    if (left > 8) {
      hash ^= hash >> 29;
      p += 8;
      left -= 8;
      while (left >= 8) {
        std::uint64_t word;
        std::memcpy(&word, p, 8);
        hash = (hash ^ word) * kMultiplier;
        hash ^= hash >> 29;
        p += 8;
        left -= 8;
      }
      if (left > 0) hash = (hash ^ first_bytes(p, left)) * kMultiplier;
    }
    return {hash ^ (hash >> 32), head};
  }

  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace shardprop::detail
