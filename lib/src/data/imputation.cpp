// Imputation: exact per-feature sums for the mean, a radix selection over the float bits for the
// median (four passes of byte histograms, which add up exactly across chunks and ranks), and the
// drop step that leaves rows with missing cells out.
#include <tbb/blocked_range.h>
#include <tbb/combinable.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/exact_sum.hpp"
#include "data/imputation_fit.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace detail {
namespace {

std::string feature_label(const std::vector<std::string>& names, int j) {
  std::string label = "feature " + std::to_string(j + 1);
  if (static_cast<std::size_t>(j) < names.size()) label += " '" + names[j] + "'";
  return label;
}

[[noreturn]] void no_values(MissingPolicy policy, const std::vector<std::string>& names, int j) {
  throw Error("imputation: " + feature_label(names, j) + " has no value that is not missing, so " +
              std::string(to_string(policy)) +
              " has nothing to fit; leave the column out (ignore it) or use --missing zero");
}

void check_features(const Dataset& rows, int features) {
  if (rows.feature_count != features) {
    throw Error("imputation: chunks of " + std::to_string(rows.feature_count) +
                " features, expected " + std::to_string(features));
  }
}

// Exact per-feature sums of floats, taken in one pass over rows in memory order. A finite float
// is m·2^(E − 150) with |m| < 2^24 and E its biased exponent (1 for subnormals), so each
// feature keeps one int64 per exponent, which 2^39 adds cannot overflow; fold() hands them to
// ExactSums. Infinities are kept as flags, NaN (missing) is left out.
class FloatSums {
 public:
  static constexpr std::size_t kExponents = 256;

  explicit FloatSums(std::size_t features)
      : buckets_(features * kExponents, 0), counts_(features, 0), infinities_(features, 0) {}

  void add_row(const float* x) {
    for (std::size_t j = 0; j < counts_.size(); ++j) {
      const auto bits = std::bit_cast<std::uint32_t>(x[j]);
      const std::uint32_t exponent = (bits >> 23) & 0xffu;
      if (exponent == 0xffu) [[unlikely]] {
        if ((bits & 0x7fffffu) != 0) continue;  // NaN: missing
        infinities_[j] |= (bits >> 31) != 0 ? kMinusInfinity : kPlusInfinity;
        ++counts_[j];
        continue;
      }
      const auto magnitude =
          static_cast<std::int64_t>((bits & 0x7fffffu) | (std::uint32_t{exponent != 0} << 23));
      buckets_[j * kExponents + exponent] += (bits >> 31) != 0 ? -magnitude : magnitude;
      ++counts_[j];
    }
  }

  void fold(std::vector<ExactSum>& sums, std::vector<std::uint64_t>& counts) const {
    for (std::size_t j = 0; j < counts_.size(); ++j) {
      counts[j] += counts_[j];
      if ((infinities_[j] & kPlusInfinity) != 0) sums[j].add(HUGE_VAL);
      if ((infinities_[j] & kMinusInfinity) != 0) sums[j].add(-HUGE_VAL);
      for (std::size_t exponent = 0; exponent < kExponents; ++exponent) {
        const std::int64_t m = buckets_[j * kExponents + exponent];
        if (m == 0) continue;
        // m·2^e as two exact doubles: its high bits (below 2^31 in magnitude) and its low 32.
        const int e = std::max<int>(static_cast<int>(exponent), 1) - 150;
        sums[j].add(std::ldexp(static_cast<double>(m >> 32), e + 32));
        sums[j].add(std::ldexp(static_cast<double>(m & 0xffffffff), e));
      }
    }
  }

 private:
  static constexpr std::uint8_t kPlusInfinity = 1;
  static constexpr std::uint8_t kMinusInfinity = 2;
  std::vector<std::int64_t> buckets_;  // feature-major, kExponents per feature
  std::vector<std::uint64_t> counts_;
  std::vector<std::uint8_t> infinities_;
};

// For each feature, the count and the exact sum of its values that are not NaN.
class PresentSums {
 public:
  explicit PresentSums(int features)
      : sums_(static_cast<std::size_t>(features)), counts_(static_cast<std::size_t>(features)) {}

  // In parallel over blocks of rows, each thread summing into FloatSums of its own; exact sums
  // merge in any order, so the result does not depend on the scheduling.
  void add(const Dataset& rows) {
    check_features(rows, static_cast<int>(sums_.size()));
    const std::size_t n = sums_.size();
    if (n == 0) return;
    tbb::combinable<FloatSums> partial([n] { return FloatSums(n); });
    const std::int64_t grain = std::max<std::int64_t>(1, 16384 / static_cast<std::int64_t>(n));
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows.rows, grain),
                      [&](const tbb::blocked_range<std::int64_t>& range) {
                        FloatSums& sums = partial.local();
                        for (std::int64_t r = range.begin(); r < range.end(); ++r) {
                          sums.add_row(rows.features.data() + static_cast<std::size_t>(r) * n);
                        }
                      });
    partial.combine_each([&](const FloatSums& sums) { sums.fold(sums_, counts_); });
  }

  // Per feature: the count, then the sum's words.
  std::vector<std::uint64_t> serialize() const {
    std::vector<std::uint64_t> words;
    for (std::size_t j = 0; j < sums_.size(); ++j) {
      words.push_back(counts_[j]);
      const auto sum = sums_[j].serialize();
      words.insert(words.end(), sum.begin(), sum.end());
    }
    return words;
  }

  void merge_serialized(std::span<const std::uint64_t> words) {
    constexpr std::size_t kWords = 1 + ExactSum::kSerializedWords;
    if (words.size() != sums_.size() * kWords) {
      throw Error("imputation: another process sent sums of a different feature count");
    }
    for (std::size_t j = 0; j < sums_.size(); ++j) {
      const std::span<const std::uint64_t> feature = words.subspan(j * kWords, kWords);
      counts_[j] += feature[0];
      sums_[j].merge(ExactSum::deserialize(feature.subspan(1).first<ExactSum::kSerializedWords>()));
    }
  }

  std::vector<float> means(MissingPolicy policy, const std::vector<std::string>& names) const {
    std::vector<float> fill(sums_.size());
    for (std::size_t j = 0; j < sums_.size(); ++j) {
      if (counts_[j] == 0) no_values(policy, names, static_cast<int>(j));
      fill[j] = static_cast<float>(sums_[j].value() / static_cast<double>(counts_[j]));
    }
    return fill;
  }

 private:
  std::vector<ExactSum> sums_;
  std::vector<std::uint64_t> counts_;
};

// Floats ordered as unsigned integers: negative values flipped whole, positive ones their sign
// bit set (-0 just below +0, which are equal values anyway).
std::uint32_t order_key(float x) {
  const auto bits = std::bit_cast<std::uint32_t>(x);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

float from_order_key(std::uint32_t key) {
  return std::bit_cast<float>((key & 0x80000000u) != 0 ? key & 0x7fffffffu : ~key);
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
    check_features(rows, features_);
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
      if (counts_[f] == 0) no_values(MissingPolicy::median, names, static_cast<int>(f));
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

}  // namespace

std::int64_t drop_missing_rows(Dataset& data, LabelText* labels) {
  const auto features = static_cast<std::size_t>(data.feature_count);
  const auto targets = static_cast<std::size_t>(data.target_width);
  std::int64_t kept = 0;
  for (std::int64_t r = 0; r < data.rows; ++r) {
    const float* x = data.features.data() + static_cast<std::size_t>(r) * features;
    const float* t = data.targets.data() + static_cast<std::size_t>(r) * targets;
    bool missing = false;
    for (std::size_t j = 0; j < features; ++j) missing |= std::isnan(x[j]);
    for (std::size_t j = 0; j < targets; ++j) missing |= std::isnan(t[j]);
    if (missing) continue;
    if (kept != r) {
      std::memmove(data.features.data() + static_cast<std::size_t>(kept) * features, x,
                   features * sizeof(float));
      std::memmove(data.targets.data() + static_cast<std::size_t>(kept) * targets, t,
                   targets * sizeof(float));
      if (labels != nullptr) labels[kept] = labels[r];
    }
    ++kept;
  }
  const std::int64_t dropped = data.rows - kept;
  data.rows = kept;
  data.features.resize(static_cast<std::size_t>(kept) * features);
  data.targets.resize(static_cast<std::size_t>(kept) * targets);
  return dropped;
}

Imputation fit_imputation(MissingPolicy policy, const ImputationRows& rows) {
  Imputation imputation;
  imputation.policy = policy;
  switch (policy) {
    case MissingPolicy::error:
    case MissingPolicy::drop:
      return imputation;
    case MissingPolicy::zero:
      imputation.fill.assign(static_cast<std::size_t>(rows.features), 0.0f);
      return imputation;
    case MissingPolicy::mean: {
      PresentSums sums(rows.features);
      rows.pass([&](const Dataset& chunk) { sums.add(chunk); });
      PresentSums total(rows.features);
      for (const std::vector<std::uint64_t>& words : rows.gather(sums.serialize())) {
        total.merge_serialized(words);
      }
      imputation.fill = total.means(policy, rows.names);
      return imputation;
    }
    case MissingPolicy::median: {
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
      imputation.fill = selection.medians(rows.names);
      return imputation;
    }
  }
  throw Error("imputation: unknown missing-value policy");
}

}  // namespace detail

std::string_view to_string(MissingPolicy policy) {
  switch (policy) {
    case MissingPolicy::error:
      return "error";
    case MissingPolicy::mean:
      return "mean";
    case MissingPolicy::median:
      return "median";
    case MissingPolicy::zero:
      return "zero";
    case MissingPolicy::drop:
      return "drop";
  }
  return "unknown";
}

MissingPolicy parse_missing_policy(const std::string& text) {
  for (const MissingPolicy policy :
       {MissingPolicy::error, MissingPolicy::mean, MissingPolicy::median, MissingPolicy::zero,
        MissingPolicy::drop}) {
    if (text == to_string(policy)) return policy;
  }
  throw Error("unknown missing-value policy '" + text + "' (error, mean, median, zero or drop)");
}

Imputation Imputation::fit(const Dataset& data, MissingPolicy policy) {
  detail::ImputationRows rows;
  rows.features = data.feature_count;
  rows.names = data.feature_names;
  rows.pass = [&](const std::function<void(const Dataset&)>& work) { work(data); };
  rows.gather = [](const std::vector<std::uint64_t>& words) {
    return std::vector<std::vector<std::uint64_t>>{words};
  };
  return detail::fit_imputation(policy, rows);
}

Imputation Imputation::fit(DataStream& stream, MissingPolicy policy) {
  if (policy == MissingPolicy::error || policy == MissingPolicy::drop) return {policy, {}};
  // The columns, from the first chunk.
  Dataset chunk;
  stream.rewind();
  const bool any = stream.next(chunk);
  stream.rewind();
  if (!any)
    throw Error("imputation: the stream has no rows to fit " + std::string(to_string(policy)));
  detail::ImputationRows rows;
  rows.features = chunk.feature_count;
  rows.names = chunk.feature_names;
  rows.pass = [&](const std::function<void(const Dataset&)>& work) {
    stream.rewind();
    while (stream.next(chunk)) work(chunk);
    stream.rewind();
  };
  rows.gather = [](const std::vector<std::uint64_t>& words) {
    return std::vector<std::vector<std::uint64_t>>{words};
  };
  return detail::fit_imputation(policy, rows);
}

void Imputation::apply(Dataset& data) const {
  if (fill.empty()) return;
  if (fill.size() != static_cast<std::size_t>(data.feature_count)) {
    throw Error("imputation: fitted on " + std::to_string(fill.size()) +
                " features, the dataset has " + std::to_string(data.feature_count));
  }
  const std::size_t n = fill.size();
  const std::int64_t grain = std::max<std::int64_t>(1, 16384 / static_cast<std::int64_t>(n));
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, data.rows, grain),
                    [&](const tbb::blocked_range<std::int64_t>& rows) {
                      for (std::int64_t r = rows.begin(); r < rows.end(); ++r) {
                        float* x = data.features.data() + static_cast<std::size_t>(r) * n;
                        // Only missing cells are written: a clean row's memory stays clean.
                        for (std::size_t j = 0; j < n; ++j) {
                          if (std::isnan(x[j])) [[unlikely]]
                            x[j] = fill[j];
                        }
                      }
                    });
}

}  // namespace shardprop
