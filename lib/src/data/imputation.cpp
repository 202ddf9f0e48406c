// Imputation: the policies' fits (exact per-feature sums for the mean, median_fit for the median),
// filling in missing cells, and the drop step that leaves rows with missing cells out.
#include <tbb/blocked_range.h>
#include <tbb/combinable.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/exact_sum.hpp"
#include "base/simd.hpp"
#include "data/float_sums.hpp"
#include "data/imputation_fit.hpp"
#include "data/median_fit.hpp"
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

}  // namespace

void throw_no_values(MissingPolicy policy, const std::vector<std::string>& names, int j) {
  throw Error("imputation: " + feature_label(names, j) + " has no value that is not missing, so " +
              std::string(to_string(policy)) +
              " has nothing to fit; leave the column out (ignore it) or use --missing zero");
}

void check_feature_count(const Dataset& rows, int features) {
  if (rows.feature_count != features) {
    throw Error("imputation: chunks of " + std::to_string(rows.feature_count) +
                " features, expected " + std::to_string(features));
  }
}

namespace {

// For each feature, the count and the exact sum of its values that are not NaN.
class PresentSums {
 public:
  explicit PresentSums(int features)
      : sums_(static_cast<std::size_t>(features)), counts_(static_cast<std::size_t>(features)) {}

  // In parallel over blocks of rows, each thread summing into FloatSums of its own; exact sums
  // merge in any order, so the result does not depend on the scheduling.
  void add(const Dataset& rows) {
    check_feature_count(rows, static_cast<int>(sums_.size()));
    const std::size_t n = sums_.size();
    if (n == 0) return;
    tbb::combinable<FloatSums> partial([n] { return FloatSums(n); });
    const std::int64_t grain = std::max<std::int64_t>(1, 16384 / static_cast<std::int64_t>(n));
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, rows.rows, grain),
                      [&](const tbb::blocked_range<std::int64_t>& range) {
                        partial.local().add_rows(
                            rows.features.data() + static_cast<std::size_t>(range.begin()) * n,
                            static_cast<std::size_t>(range.size()));
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
      if (counts_[j] == 0) throw_no_values(policy, names, static_cast<int>(j));
      fill[j] = static_cast<float>(sums_[j].value() / static_cast<double>(counts_[j]));
    }
    return fill;
  }

 private:
  std::vector<ExactSum> sums_;
  std::vector<std::uint64_t> counts_;
};

// The lanes fill_missing works in.
constexpr std::size_t kFillLanes = 8;

// Replaces each NaN of x[0 .. count) with the value at its place in a repeating pattern:
// pattern[i % period], period a multiple of kFillLanes and count of period. Groups of lanes
// without a NaN, most of them, are only read, so their memory stays clean. Vectors stay local:
// none is passed to or returned from a function, whose ABI would depend on AVX.
SHARDPROP_MULTIVERSION
void fill_missing(float* x, std::size_t count, const float* pattern, std::size_t period) {
  using Lanes = std::int32_t __attribute__((vector_size(32)));
  static_assert(sizeof(Lanes) == kFillLanes * sizeof(float));
  for (std::size_t start = 0; start < count; start += period) {
    for (std::size_t f = 0; f < period; f += kFillLanes) {
      Lanes bits;
      std::memcpy(&bits, x + start + f, sizeof bits);
      const Lanes missing = (bits & 0x7fffffff) > 0x7f800000;
      std::uint64_t words[sizeof missing / sizeof(std::uint64_t)];
      std::memcpy(words, &missing, sizeof missing);
      if ((words[0] | words[1] | words[2] | words[3]) == 0) continue;
      Lanes fill;
      std::memcpy(&fill, pattern + f, sizeof fill);
      bits = missing ? fill : bits;
      std::memcpy(x + start + f, &bits, sizeof bits);
    }
  }
}

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
      imputation.fill = fit_medians(rows);
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

namespace {

// ImputationRows::gather of a single process.
std::vector<std::vector<std::uint64_t>> own_words(std::vector<std::uint64_t> words) {
  std::vector<std::vector<std::uint64_t>> all(1);
  all[0] = std::move(words);
  return all;
}

}  // namespace

Imputation Imputation::fit(const Dataset& data, MissingPolicy policy) {
  detail::ImputationRows rows;
  rows.features = data.feature_count;
  rows.names = data.feature_names;
  rows.pass = [&](const std::function<void(const Dataset&)>& work) { work(data); };
  rows.sample = [&](const std::function<void(const Dataset&)>& work) {
    work(detail::sample_rows(data));
  };
  rows.gather = own_words;
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
  rows.sample = [&](const std::function<void(const Dataset&)>& work) {
    stream.rewind();
    stream.next(chunk);
    stream.rewind();
    work(detail::sample_rows(chunk));
  };
  rows.gather = own_words;
  return detail::fit_imputation(policy, rows);
}

void Imputation::apply(Dataset& data) const {
  if (fill.empty()) return;
  if (fill.size() != static_cast<std::size_t>(data.feature_count)) {
    throw Error("imputation: fitted on " + std::to_string(fill.size()) +
                " features, the dataset has " + std::to_string(data.feature_count));
  }
  const std::size_t n = fill.size();
  // Rows side by side, `group` at a time, repeat the fills with a period of whole lanes; the rows
  // after the last whole group one value at a time.
  const std::size_t group = detail::kFillLanes / std::gcd(n, detail::kFillLanes);
  std::vector<float> pattern;
  for (std::size_t g = 0; g < group; ++g) pattern.insert(pattern.end(), fill.begin(), fill.end());
  const auto groups = static_cast<std::int64_t>(static_cast<std::size_t>(data.rows) / group);
  const std::int64_t grain =
      std::max<std::int64_t>(1, 16384 / static_cast<std::int64_t>(n * group));
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, groups, grain),
                    [&](const tbb::blocked_range<std::int64_t>& range) {
                      const std::size_t period = n * group;
                      detail::fill_missing(
                          data.features.data() + static_cast<std::size_t>(range.begin()) * period,
                          static_cast<std::size_t>(range.size()) * period, pattern.data(), period);
                    });
  const std::size_t cells = static_cast<std::size_t>(data.rows) * n;
  for (std::size_t i = static_cast<std::size_t>(groups) * group * n; i < cells; ++i) {
    if (std::isnan(data.features[i])) data.features[i] = fill[i % n];
  }
}

}  // namespace shardprop
