// Medians: a search that starts from a sample's middle values and finishes on the few values
// near them, with an exact radix selection over the floats' bits (four passes of byte
// histograms, which add up exactly across chunks and ranks) behind it.
#include "data/median_fit.hpp"

#include <tbb/blocked_range.h>
#include <tbb/combinable.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/rng.hpp"
#include "base/simd.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

// Floats ordered as unsigned integers: negative values flipped whole, positive ones their sign
// bit set (-0 just below +0, which are equal values anyway).
std::uint32_t order_key(float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

float from_order_key(std::uint32_t key) {
  return std::bit_cast<float>((key & 0x80000000u) != 0 ? key & 0x7fffffffu : ~key);
}

// The k-th smallest (0-based, k below the count) of `keys`, which stay as they are: by digits of
// 11, 11 and 10 bits from the top, each level counting the candidates' digits and keeping, in
// `scratch`, those with the digit that holds rank k. Linear and free of data-dependent branches,
// where std::nth_element mispredicts about every other comparison.
std::uint32_t kth_smallest(std::span<const std::uint32_t> keys, std::size_t k,
                           std::vector<std::uint32_t>& scratch) {
  constexpr int kShifts[] = {21, 10, 0};
  constexpr std::uint32_t kDigits[] = {0x7ff, 0x7ff, 0x3ff};
  std::array<std::size_t, 2048> counts{};
  std::span<const std::uint32_t> candidates = keys;
  for (std::size_t level = 0; level < 3; ++level) {
    const int shift = kShifts[level];
    const std::uint32_t mask = kDigits[level];
    std::fill(counts.begin(), counts.end(), 0);
    for (const std::uint32_t key : candidates) ++counts[(key >> shift) & mask];
    std::uint32_t digit = 0;
    while (k >= counts[digit]) k -= counts[digit++];
    // Every candidate is written and the place advances past the digit's own, so the write
    // never overtakes the read when the candidates are already in `scratch` (which then
    // shrinks, never moving).
    const std::size_t keep = counts[digit];
    if (scratch.size() < keep + 1) scratch.resize(keep + 1);
    std::size_t n = 0;
    for (const std::uint32_t key : candidates) {
      scratch[n] = key;
      n += ((key >> shift) & mask) == digit ? 1 : 0;
    }
    candidates = std::span<const std::uint32_t>(scratch.data(), n);
  }
  return candidates[k];  // every candidate left has the same 32 bits
}

// The k-th smallest values (0-based) k = (n − 1)/2 and n/2 of each feature, by their order keys,
// one byte per pass from the top: a pass counts, per feature and per wanted rank, the values
// whose higher bytes match the bytes chosen so far, by their next byte. Counts add up exactly,
// so chunks and ranks may be counted in any split.
class MedianSelection {
 public:
  static constexpr int kPasses = 4;
  static constexpr std::size_t kBins = 256;

  explicit MedianSelection(int features)
      : features_(features),
        counts_(static_cast<std::size_t>(features)),
        prefix_(static_cast<std::size_t>(features) * 2),
        rank_(static_cast<std::size_t>(features) * 2),
        histograms_(static_cast<std::size_t>(features) * 2 * kBins) {}

  // In parallel over blocks of rows in memory order, each thread counting into histograms of
  // its own, summed afterwards (counts add up exactly in any order).
  void add(const Dataset& rows) {
    check_feature_count(rows, features_);
    const int shift = 24 - 8 * pass_;
    const auto n = static_cast<std::size_t>(features_);
    if (n == 0) return;
    tbb::combinable<std::vector<std::uint64_t>> partial(
        [&] { return std::vector<std::uint64_t>(histograms_.size(), 0); });
    const std::int64_t grain = std::max<std::int64_t>(1, 16384 / static_cast<std::int64_t>(n));
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows.rows, grain),
                      [&](const tbb::blocked_range<std::int64_t>& range) {
                        std::vector<std::uint64_t>& histograms = partial.local();
                        for (std::int64_t r = range.begin(); r < range.end(); ++r) {
                          const float* x = rows.features.data() + static_cast<std::size_t>(r) * n;
                          for (std::size_t f = 0; f < n; ++f) {
                            if (std::isnan(x[f])) continue;
                            const std::uint32_t key = order_key(x[f]);
                            const std::size_t bin = (key >> shift) & 0xffu;
                            // The first pass has no prefix: every value counts (and gives the
                            // count).
                            const std::uint32_t above = pass_ == 0 ? 0 : key >> (shift + 8);
                            std::uint64_t* low = histograms.data() + f * 2 * kBins;
                            if (above == prefix_[2 * f]) ++low[bin];
                            if (above == prefix_[2 * f + 1]) ++low[kBins + bin];
                          }
                        }
                      });
    partial.combine_each([&](const std::vector<std::uint64_t>& histograms) {
      for (std::size_t i = 0; i < histograms.size(); ++i) histograms_[i] += histograms[i];
    });
  }

  std::vector<std::uint64_t>& histograms() { return histograms_; }

  // Chooses each wanted rank's next byte from the (all-process) histograms.
  void finish_pass() {
    for (std::size_t f = 0; f < static_cast<std::size_t>(features_); ++f) {
      const std::uint64_t* low = histograms_.data() + f * 2 * kBins;
      if (pass_ == 0) {
        std::uint64_t count = 0;
        for (std::size_t b = 0; b < kBins; ++b) count += low[b];
        counts_[f] = count;
        rank_[2 * f] = count == 0 ? 0 : (count - 1) / 2;
        rank_[2 * f + 1] = count / 2;
      }
      if (counts_[f] == 0) continue;
      for (std::size_t t = 0; t < 2; ++t) {
        const std::uint64_t* histogram = low + t * kBins;
        std::uint64_t& rank = rank_[2 * f + t];
        std::size_t b = 0;
        while (rank >= histogram[b]) rank -= histogram[b++];  // the ranks are below the count
        prefix_[2 * f + t] = prefix_[2 * f + t] << 8 | static_cast<std::uint32_t>(b);
      }
    }
    std::fill(histograms_.begin(), histograms_.end(), 0);
    ++pass_;
  }

  bool done() const { return pass_ == kPasses; }

  std::vector<float> medians(const std::vector<std::string>& names) const {
    std::vector<float> fill(static_cast<std::size_t>(features_));
    for (std::size_t f = 0; f < fill.size(); ++f) {
      if (counts_[f] == 0) throw_no_values(MissingPolicy::median, names, static_cast<int>(f));
      const double low = from_order_key(prefix_[2 * f]);
      const double high = from_order_key(prefix_[2 * f + 1]);
      fill[f] = static_cast<float>((low + high) / 2.0);
    }
    return fill;
  }

 private:
  int features_;
  int pass_ = 0;
  std::vector<std::uint64_t> counts_;      // values that are not NaN, per feature
  std::vector<std::uint32_t> prefix_;      // per feature and wanted rank: the key bytes chosen
  std::vector<std::uint64_t> rank_;        // ... and the rank among the values matching them
  std::vector<std::uint64_t> histograms_;  // [feature][wanted rank][byte]
};

// Counters of BracketedMedians, counter-major: values present, below lo, equal to lo, strictly
// between lo and hi, equal to hi (when hi is above lo).
constexpr std::size_t kCounters = 5;
constexpr std::size_t kPresent = 0, kBelow = 1, kAtLow = 2, kBetween = 3, kAtHigh = 4;

// The lanes count_around counts in, which rows are laid side by side to a multiple of.
constexpr std::size_t kCountLanes = 8;

// count_around's counters per place, counter-major, each a count of values: present, below lo,
// at most lo, below hi, at most hi. Each is one comparison; BracketedMedians' counters are their
// differences.
constexpr std::size_t kCumulativeCounters = 5;
constexpr std::size_t kCountPresent = 0, kCountBelowLow = 1, kCountUpToLow = 2, kCountBelowHigh = 3,
                      kCountUpToHigh = 4;

// An order key as a signed integer (the key with its top bit flipped), which vector lanes compare
// in one instruction; NaN, which has no key, becomes the largest value, above every bracket.
std::int32_t signed_key(std::uint32_t key) { return static_cast<std::int32_t>(key ^ 0x80000000u); }

// Counts rows of `width` values against brackets: each place i of a row has its bracket, as
// signed keys: low[i], high[i] and each plus one (below low + 1 is at most low), and its feature
// feature[i] (a row of the data, or several side by side so that the width is a multiple of the
// vector lanes). Adds to 32-bit counters per place, `counts` (kCumulativeCounters·width, fewer
// than 2^32 rows), and writes the values strictly inside a bracket to `inside` (feature << 32 |
// order key, room for rows·width); returns how many. Branch-free but for skipping groups of
// lanes with no value inside: the counting runs in GCC vector lanes (two SSE registers where AVX2
// is absent), a comparison's all-ones lanes subtracted as counts; a group with a value inside
// writes every key and advances only past those inside. Vectors stay local: none is passed to or
// returned from a function, whose ABI would depend on AVX.
SHARDPROP_MULTIVERSION
std::size_t count_around(const float* x, std::size_t rows, std::size_t width,
                         const std::int32_t* const bounds[4], const std::uint32_t* feature,
                         std::uint32_t* counts, std::uint64_t* inside) {
  using Lanes = std::int32_t __attribute__((vector_size(32)));
  constexpr std::size_t kLanes = kCountLanes;
  static_assert(sizeof(Lanes) == kLanes * sizeof(std::int32_t));
  std::uint32_t* const c[kCumulativeCounters] = {counts, counts + width, counts + 2 * width,
                                                 counts + 3 * width, counts + 4 * width};
  const std::int32_t* const low = bounds[0];
  const std::int32_t* const low_next = bounds[1];
  const std::int32_t* const high = bounds[2];
  const std::int32_t* const high_next = bounds[3];
  std::size_t collected = 0;
  const auto collect = [&](std::size_t f) {
    inside[collected++] = std::uint64_t{feature[f]} << 32 | order_key(x[f]);
  };
  for (std::size_t r = 0; r < rows; ++r, x += width) {
    std::size_t f = 0;
    for (; f + kLanes <= width; f += kLanes) {
      Lanes bits, lo, lo1, hi, hi1, present, below_lo, upto_lo, below_hi, upto_hi;
      std::memcpy(&bits, x + f, sizeof bits);
      std::memcpy(&lo, low + f, sizeof lo);
      std::memcpy(&lo1, low_next + f, sizeof lo1);
      std::memcpy(&hi, high + f, sizeof hi);
      std::memcpy(&hi1, high_next + f, sizeof hi1);
      std::memcpy(&present, c[kCountPresent] + f, sizeof present);
      std::memcpy(&below_lo, c[kCountBelowLow] + f, sizeof below_lo);
      std::memcpy(&upto_lo, c[kCountUpToLow] + f, sizeof upto_lo);
      std::memcpy(&below_hi, c[kCountBelowHigh] + f, sizeof below_hi);
      std::memcpy(&upto_hi, c[kCountUpToHigh] + f, sizeof upto_hi);
      const Lanes is = (bits & 0x7fffffff) <= 0x7f800000;  // not NaN
      const Lanes key = is ? bits ^ ((bits >> 31) & 0x7fffffff) : Lanes{} + 0x7fffffff;
      const Lanes at_most_lo = key < lo1;
      const Lanes under_hi = key < hi;
      present -= is;
      below_lo -= key < lo;
      upto_lo -= at_most_lo;
      below_hi -= under_hi;
      upto_hi -= key < hi1;
      std::memcpy(c[kCountPresent] + f, &present, sizeof present);
      std::memcpy(c[kCountBelowLow] + f, &below_lo, sizeof below_lo);
      std::memcpy(c[kCountUpToLow] + f, &upto_lo, sizeof upto_lo);
      std::memcpy(c[kCountBelowHigh] + f, &below_hi, sizeof below_hi);
      std::memcpy(c[kCountUpToHigh] + f, &upto_hi, sizeof upto_hi);
      // A few percent of the values are inside: most groups of lanes have none, which their
      // words ORed together show.
      const Lanes in = under_hi & ~at_most_lo;
      std::uint64_t words[sizeof in / sizeof(std::uint64_t)];
      std::memcpy(words, &in, sizeof in);
      if ((words[0] | words[1] | words[2] | words[3]) != 0) {
        for (std::size_t i = 0; i < kLanes; ++i) {
          inside[collected] = std::uint64_t{feature[f + i]} << 32 | order_key(x[f + i]);
          collected += static_cast<std::uint32_t>(in[i]) & 1u;
        }
      }
    }
    for (; f < width; ++f) {
      const auto bits = std::bit_cast<std::uint32_t>(x[f]);
      const bool is = (bits & 0x7fffffffu) <= 0x7f800000u;
      const std::int32_t key = is ? signed_key(order_key(x[f])) : 0x7fffffff;
      c[kCountPresent][f] += is ? 1u : 0u;
      c[kCountBelowLow][f] += key < low[f] ? 1u : 0u;
      c[kCountUpToLow][f] += key < low_next[f] ? 1u : 0u;
      c[kCountBelowHigh][f] += key < high[f] ? 1u : 0u;
      c[kCountUpToHigh][f] += key < high_next[f] ? 1u : 0u;
      if (key > low[f] && key < high[f]) collect(f);
    }
  }
  return collected;
}

// The same k-th smallest values in one pass when a sample of the rows brackets them: the sample
// (every process's, gathered) gives each feature keys lo <= hi around its middle ranks; a pass
// counts the values below lo, equal to lo and equal to hi, and collects those strictly between.
// When every wanted rank falls among them the selection finishes on the collected values, which
// are a few percent of the rows; otherwise (an unrepresentative sample, or too many values
// collected) it reports a miss and the radix selection runs. Either way the result is the exact
// order statistic, so which path ran never shows in the bits.
class BracketedMedians {
 public:
  // Sample keys per feature at z standard deviations of the sample median's rank on either side:
  // for a random sample, a bracket misses with a probability of about 1e-6 per feature.
  static constexpr double kZ = 5.0;
  // Beyond this many collected values over all processes the pass gives up (memory bound).
  static constexpr std::uint64_t kMaxCollected = std::uint64_t{1} << 25;

  explicit BracketedMedians(int features)
      : features_(static_cast<std::size_t>(features)),
        low_(features_, 0),
        high_(features_, 0),
        counts_(features_ * kCounters, 0) {}

  // Chooses the brackets from every process's sample keys (words: per feature, the count of
  // keys, then the keys). Returns false when some feature has no sample value to bracket with.
  bool choose(const std::vector<std::vector<std::uint64_t>>& samples) {
    // Where each feature's keys start in each process's words (per feature, the count of keys,
    // then the keys).
    std::vector<std::vector<std::size_t>> starts(samples.size(),
                                                 std::vector<std::size_t>(features_ + 1, 0));
    std::vector<std::size_t> sizes(features_, 0);
    for (std::size_t p = 0; p < samples.size(); ++p) {
      const std::vector<std::uint64_t>& words = samples[p];
      std::size_t at = 0;
      for (std::size_t f = 0; f < features_; ++f) {
        if (at >= words.size() || words[at] > words.size() - at - 1) {
          throw Error("imputation: another process sent a sample of a different feature count");
        }
        starts[p][f] = at + 1;
        sizes[f] += static_cast<std::size_t>(words[at]);
        at += 1 + static_cast<std::size_t>(words[at]);
      }
      starts[p][features_] = at;
    }
    if (std::any_of(sizes.begin(), sizes.end(), [](std::size_t n) { return n == 0; })) {
      return false;
    }
    tbb::parallel_for(std::size_t{0}, features_, [&](std::size_t f) {
      std::vector<std::uint32_t> sample;
      sample.reserve(sizes[f]);
      for (std::size_t p = 0; p < samples.size(); ++p) {
        const auto first = samples[p].begin() + static_cast<std::ptrdiff_t>(starts[p][f]);
        const auto count = static_cast<std::ptrdiff_t>(samples[p][starts[p][f] - 1]);
        sample.insert(sample.end(), first, first + count);  // each key is below 2^32
      }
      const auto m = static_cast<double>(sample.size());
      const double margin = kZ * std::sqrt(m) / 2.0;
      const auto low =
          static_cast<std::size_t>(std::max(0.0, std::floor((m - 1.0) / 2.0 - margin)));
      const auto high = static_cast<std::size_t>(std::min(m - 1.0, std::ceil(m / 2.0 + margin)));
      std::vector<std::uint32_t> scratch;
      low_[f] = kth_smallest(sample, low, scratch);
      high_[f] = kth_smallest(sample, high, scratch);
    });
    return true;
  }

  // This process's counts and collected keys over one chunk, in parallel over blocks of rows.
  void add(const Dataset& rows) {
    check_feature_count(rows, static_cast<int>(features_));
    const std::size_t n = features_;
    if (n == 0 || overflow_) return;
    // Rows side by side, `group` at a time, make rows of a multiple of kCountLanes values.
    const std::size_t group = kCountLanes / std::gcd(n, kCountLanes);
    const Places wide(low_, high_, group);
    const Places single(low_, high_, 1);
    tbb::combinable<Partial> partial([&] { return Partial(n, wide.width()); });
    const auto grain = static_cast<std::int64_t>(std::max<std::size_t>(group, 16384 / n));
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, rows.rows, grain),
        [&](const tbb::blocked_range<std::int64_t>& range) {
          Partial& local = partial.local();
          const float* x = rows.features.data() + static_cast<std::size_t>(range.begin()) * n;
          auto left = static_cast<std::size_t>(range.size());
          while (left > 0) {
            const Places& places = left >= group ? wide : single;
            const std::size_t block = std::min(kBlockRows, left / (places.width() / n));
            local.count(x, block, places);
            x += block * places.width();
            left -= block * (places.width() / n);
          }
        });
    partial.combine_each([&](Partial& local) {
      for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += local.counts[i];
      if (collected_.size() + local.used > kMaxCollected) overflow_ = true;
      if (overflow_) return;
      local.collected.resize(local.used);
      if (collected_.empty()) {
        collected_ = std::move(local.collected);
      } else {
        collected_.insert(collected_.end(), local.collected.begin(), local.collected.end());
      }
    });
    if (overflow_) collected_ = {};
  }

  // The counters (counter-major), then how many values were collected and whether the
  // collection overflowed: the same length on every process.
  std::vector<std::uint64_t> count_words() const {
    std::vector<std::uint64_t> words = counts_;
    words.push_back(collected_.size());
    words.push_back(overflow_ ? 1 : 0);
    return words;
  }

  // Sums every process's count_words(); false when the values collected (overflowed on one
  // process or too many in all) cannot be gathered, so the radix selection must run.
  bool add_counts(const std::vector<std::vector<std::uint64_t>>& all) {
    totals_.assign(counts_.size(), 0);
    std::uint64_t collected = 0;
    bool overflow = false;
    for (const std::vector<std::uint64_t>& words : all) {
      if (words.size() != counts_.size() + 2) {
        throw Error("imputation: another process sent counts of a different feature count");
      }
      for (std::size_t i = 0; i < counts_.size(); ++i) totals_[i] += words[i];
      collected += words[counts_.size()];
      overflow |= words[counts_.size() + 1] != 0;
    }
    return !overflow && collected <= kMaxCollected;
  }

  // This process's collected values (feature << 32 | key), moved out.
  std::vector<std::uint64_t> take_collected() { return std::move(collected_); }

  // The medians from the summed counts and every process's collected values, or nothing when a
  // wanted rank is outside a bracket.
  std::optional<std::vector<float>> medians(const std::vector<std::vector<std::uint64_t>>& all,
                                            const std::vector<std::string>& names) const {
    const std::vector<std::uint64_t>& counts = totals_;
    // The collected keys, grouped by feature (a counting sort on the feature).
    std::vector<std::uint64_t> start(features_ + 1, 0);
    for (std::size_t f = 0; f < features_; ++f)
      start[f + 1] = start[f] + counts[kBetween * features_ + f];
    std::vector<std::uint32_t> between(static_cast<std::size_t>(start[features_]));
    std::vector<std::uint64_t> next(start.begin(), start.end() - 1);
    for (const std::vector<std::uint64_t>& words : all) {
      for (std::size_t i = 0; i < words.size(); ++i) {
        const std::size_t f = words[i] >> 32;
        if (f >= features_ || next[f] == start[f + 1]) {
          throw Error("imputation: another process sent values that its counts do not match");
        }
        between[next[f]++] = static_cast<std::uint32_t>(words[i]);
      }
    }
    // Where each wanted rank falls: at lo, among the collected values, or at hi; a rank below
    // lo or above hi is a miss.
    enum class At : std::uint8_t { low, inside, high };
    std::vector<std::array<At, 2>> at(features_);
    std::vector<std::array<std::uint64_t, 2>> rank_between(features_);
    for (std::size_t f = 0; f < features_; ++f) {
      std::uint64_t c[kCounters];
      for (std::size_t i = 0; i < kCounters; ++i) c[i] = counts[i * features_ + f];
      if (c[kPresent] == 0) throw_no_values(MissingPolicy::median, names, static_cast<int>(f));
      const std::uint64_t ranks[2] = {(c[kPresent] - 1) / 2, c[kPresent] / 2};
      for (std::size_t t = 0; t < 2; ++t) {
        const std::uint64_t k = ranks[t];
        if (k < c[kBelow] || k >= c[kBelow] + c[kAtLow] + c[kBetween] + c[kAtHigh]) {
          return std::nullopt;
        }
        rank_between[f][t] = k - c[kBelow] - c[kAtLow];
        at[f][t] = k < c[kBelow] + c[kAtLow]                 ? At::low
                   : k < c[kBelow] + c[kAtLow] + c[kBetween] ? At::inside
                                                             : At::high;
      }
    }
    std::vector<float> fill(features_);
    tbb::parallel_for(std::size_t{0}, features_, [&](std::size_t f) {
      const std::span<const std::uint32_t> inside(between.data() + start[f],
                                                  start[f + 1] - start[f]);
      std::vector<std::uint32_t> scratch;
      double value[2];
      for (std::size_t t = 0; t < 2; ++t) {
        std::uint32_t key = low_[f];
        if (at[f][t] == At::high) key = high_[f];
        if (at[f][t] == At::inside) key = kth_smallest(inside, rank_between[f][t], scratch);
        value[t] = from_order_key(key);
      }
      fill[f] = static_cast<float>((value[0] + value[1]) / 2.0);
    });
    return fill;
  }

 private:
  // Rows per call of count_around (its 32-bit counters), and per growth of `collected`.
  static constexpr std::size_t kBlockRows = 64;

  // The places of a row of count_around: `group` rows of the data side by side, each place with
  // its feature's bracket as count_around takes it.
  class Places {
   public:
    Places(const std::vector<std::uint32_t>& low, const std::vector<std::uint32_t>& high,
           std::size_t group) {
      for (std::size_t g = 0; g < group; ++g) {
        for (std::size_t f = 0; f < low.size(); ++f) {
          // The keys of values that are not NaN are at most +inf's, so adding one stays in range.
          bounds_[0].push_back(signed_key(low[f]));
          bounds_[1].push_back(signed_key(low[f]) + 1);
          bounds_[2].push_back(signed_key(high[f]));
          bounds_[3].push_back(signed_key(high[f]) + 1);
          feature_.push_back(static_cast<std::uint32_t>(f));
        }
      }
      for (std::size_t i = 0; i < 4; ++i) pointers_[i] = bounds_[i].data();
    }
    std::size_t width() const { return feature_.size(); }
    const std::int32_t* const* bounds() const { return pointers_; }
    const std::vector<std::uint32_t>& feature() const { return feature_; }

   private:
    std::vector<std::int32_t> bounds_[4];  // low, low + 1, high, high + 1
    const std::int32_t* pointers_[4] = {};
    std::vector<std::uint32_t> feature_;
  };

  struct Partial {
    Partial(std::size_t features, std::size_t width)
        : counts(features * kCounters, 0), block_counts(width * kCumulativeCounters, 0) {}

    // `rows` rows of places.width() values at x.
    void count(const float* x, std::size_t rows, const Places& places) {
      const std::size_t width = places.width();
      std::fill_n(block_counts.begin(), width * kCumulativeCounters, 0u);
      // Room for every value, grown geometrically and never cleared (resizing down and up again
      // would zero it every time).
      if (collected.size() < used + rows * width) {
        collected.resize(std::max(2 * collected.size(), used + rows * width));
      }
      used += count_around(x, rows, width, places.bounds(), places.feature().data(),
                           block_counts.data(), collected.data() + used);
      const std::size_t n = counts.size() / kCounters;
      for (std::size_t place = 0; place < width; ++place) {
        const std::uint32_t* c = block_counts.data() + place;
        const auto at = [&](std::size_t counter) { return c[counter * width]; };
        const std::size_t f = places.feature()[place];
        // Between lo and hi, and at hi, only when hi is above lo: at lo = hi the counts of
        // values below and at most hi are those of lo's.
        const bool apart = places.bounds()[2][place] != places.bounds()[0][place];
        counts[kPresent * n + f] += at(kCountPresent);
        counts[kBelow * n + f] += at(kCountBelowLow);
        counts[kAtLow * n + f] += at(kCountUpToLow) - at(kCountBelowLow);
        if (apart) {
          counts[kBetween * n + f] += at(kCountBelowHigh) - at(kCountUpToLow);
          counts[kAtHigh * n + f] += at(kCountUpToHigh) - at(kCountBelowHigh);
        }
      }
    }

    std::vector<std::uint64_t> counts;        // [counter][feature]
    std::vector<std::uint32_t> block_counts;  // count_around's: [cumulative counter][place]
    std::vector<std::uint64_t> collected;     // its first `used` entries
    std::size_t used = 0;
  };

  std::size_t features_;
  std::vector<std::uint32_t> low_, high_;  // the bracket's keys per feature
  std::vector<std::uint64_t> counts_;      // [counter][feature]
  std::vector<std::uint64_t> totals_;      // ... summed over the processes
  std::vector<std::uint64_t> collected_;   // feature << 32 | key, strictly inside the bracket
  bool overflow_ = false;
};

// This process's sample keys for BracketedMedians::choose: per feature, the count of its
// present values in `sample`, then their order keys.
std::vector<std::uint64_t> sample_keys(const Dataset& sample, int features) {
  check_feature_count(sample, features);
  const auto n = static_cast<std::size_t>(features);
  const auto rows = static_cast<std::size_t>(sample.rows);
  std::vector<std::size_t> present(n, 0);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* x = sample.features.data() + r * n;
    for (std::size_t f = 0; f < n; ++f) present[f] += std::isnan(x[f]) ? 0 : 1;
  }
  std::vector<std::uint64_t> words(n + rows * n);
  std::vector<std::size_t> next(n);
  std::size_t at = 0;
  for (std::size_t f = 0; f < n; ++f) {
    words[at] = present[f];
    next[f] = at + 1;
    at += 1 + present[f];
  }
  words.resize(at);
  for (std::size_t r = 0; r < rows; ++r) {
    const float* x = sample.features.data() + r * n;
    for (std::size_t f = 0; f < n; ++f) {
      if (!std::isnan(x[f])) words[next[f]++] = order_key(x[f]);
    }
  }
  return words;
}

std::vector<float> radix_medians(const ImputationRows& rows) {
  MedianSelection selection(rows.features);
  while (!selection.done()) {
    rows.pass([&](const Dataset& chunk) { selection.add(chunk); });
    std::vector<std::uint64_t>& histograms = selection.histograms();
    const std::vector<std::vector<std::uint64_t>> all = rows.gather(histograms);
    std::fill(histograms.begin(), histograms.end(), 0);
    for (const std::vector<std::uint64_t>& counts : all) {
      if (counts.size() != histograms.size()) {
        throw Error("imputation: another process sent counts of a different feature count");
      }
      for (std::size_t i = 0; i < counts.size(); ++i) histograms[i] += counts[i];
    }
    selection.finish_pass();
  }
  return selection.medians(rows.names);
}

std::optional<std::vector<float>> bracketed_medians(const ImputationRows& rows) {
  if (!rows.sample) return std::nullopt;
  std::vector<std::uint64_t> keys;
  rows.sample([&](const Dataset& sample) { keys = sample_keys(sample, rows.features); });
  BracketedMedians medians(rows.features);
  if (!medians.choose(rows.gather(std::move(keys)))) return std::nullopt;
  rows.pass([&](const Dataset& chunk) { medians.add(chunk); });
  if (!medians.add_counts(rows.gather(medians.count_words()))) return std::nullopt;
  return medians.medians(rows.gather(medians.take_collected()), rows.names);
}

}  // namespace

Dataset sample_rows(const Dataset& data) {
  const std::int64_t limit = std::clamp<std::int64_t>(
      (std::int64_t{1} << 19) / std::max(data.feature_count, 1), 4096, 32768);
  Dataset sample;
  sample.feature_count = data.feature_count;
  const auto n = static_cast<std::size_t>(data.feature_count);
  const std::int64_t stride = std::max<std::int64_t>(1, (data.rows + limit - 1) / limit);
  // One row at a hashed place in each stride, so that a pattern repeating every few rows (every
  // tenth row missing a value, say) cannot line up with the sample. Scattered reads: in parallel.
  sample.rows = (data.rows + stride - 1) / stride;
  sample.features.resize(static_cast<std::size_t>(sample.rows) * n);
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, sample.rows, 1024),
      [&](const tbb::blocked_range<std::int64_t>& range) {
        for (std::int64_t i = range.begin(); i < range.end(); ++i) {
          const std::int64_t first = i * stride;
          const auto offset = static_cast<std::int64_t>(mix64(static_cast<std::uint64_t>(first)) %
                                                        static_cast<std::uint64_t>(stride));
          const std::int64_t r = std::min(first + offset, data.rows - 1);
          std::copy_n(
              data.features.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r) * n),
              n,
              sample.features.begin() +
                  static_cast<std::ptrdiff_t>(static_cast<std::size_t>(i) * n));
        }
      });
  return sample;
}

std::vector<float> fit_medians(const ImputationRows& rows) {
  std::optional<std::vector<float>> medians = bracketed_medians(rows);
  return medians ? std::move(*medians) : radix_medians(rows);
}

}  // namespace shardprop::detail
