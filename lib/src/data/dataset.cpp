// Dataset validation and row access.
#include "shardprop/dataset.hpp"
#include "shardprop/data_stream.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/parallel_reduce.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/rng.hpp"
#include "base/simd.hpp"
#include "data/dataset_rows.hpp"
#include "data/feature_moments.hpp"
#include "shardprop/error.hpp"

namespace shardprop {

namespace {

// Whether values[0, count) hold an infinity, or a NaN unless allow_nan: the exponent bits of
// every value tested without a branch (`&`, not `&&`), so the loop vectorizes.
SHARDPROP_MULTIVERSION bool has_non_finite(const float* values, std::size_t count, bool allow_nan) {
  const std::uint32_t mantissa_mask = allow_nan ? 0x007fffffu : 0u;
  std::uint32_t all_ones = 0;  // set if some value's exponent bits are all ones
  for (std::size_t i = 0; i < count; ++i) {
    const auto bits = std::bit_cast<std::uint32_t>(values[i]);
    all_ones |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u) &
                static_cast<std::uint32_t>((bits & mantissa_mask) == 0);
  }
  return all_ones != 0;
}

// The index of the first NaN or infinity in `values`, or values.size(). Every chunk is loaded,
// streamed and evaluated through this check, so it runs in parallel (in the caller's arena) on
// blocks tested as a whole; only a block that holds a non-finite value is searched element by
// element. With allow_nan, only infinities count.
std::size_t first_non_finite(std::span<const float> values, bool allow_nan = false) {
  constexpr std::size_t kBlock = 16384;
  const std::size_t blocks = (values.size() + kBlock - 1) / kBlock;
  return tbb::parallel_reduce(
      tbb::blocked_range<std::size_t>(0, blocks), values.size(),
      [&](const tbb::blocked_range<std::size_t>& range, std::size_t first) {
        // The first hit of this range only: `first` may come from any other range.
        for (std::size_t b = range.begin(); b < range.end(); ++b) {
          const std::size_t begin = b * kBlock;
          const std::size_t end = std::min(values.size(), begin + kBlock);
          if (!has_non_finite(values.data() + begin, end - begin, allow_nan)) continue;
          for (std::size_t i = begin; i < end; ++i) {
            if (std::isinf(values[i]) || (!allow_nan && std::isnan(values[i]))) {
              return std::min(first, i);
            }
          }
        }
        return first;
      },
      [](std::size_t a, std::size_t b) { return std::min(a, b); });
}

}  // namespace

void Dataset::validate(bool allow_missing) const {
  if (rows < 0 || feature_count < 1 || target_width < 1) {
    throw Error("dataset: rows (" + std::to_string(rows) + "), feature count (" +
                std::to_string(feature_count) + ") and target width (" +
                std::to_string(target_width) + ") must be positive");
  }
  if (features.size() != static_cast<std::size_t>(rows) * feature_count) {
    throw Error("dataset: " + std::to_string(rows) + " rows of " + std::to_string(feature_count) +
                " features need " + std::to_string(rows * feature_count) + " values, have " +
                std::to_string(features.size()));
  }
  if (targets.size() != static_cast<std::size_t>(rows) * target_width) {
    throw Error("dataset: " + std::to_string(rows) + " rows of " + std::to_string(target_width) +
                " targets need " + std::to_string(rows * target_width) + " values, have " +
                std::to_string(targets.size()));
  }
  if (const std::size_t i = first_non_finite(features, allow_missing); i != features.size()) {
    throw Error("dataset: feature " + std::to_string(i % feature_count) + " of row " +
                std::to_string(i / feature_count) + " is not finite");
  }
  if (const std::size_t i = first_non_finite(targets); i != targets.size()) {
    throw Error("dataset: target " + std::to_string(i % target_width) + " of row " +
                std::to_string(i / target_width) + " is not finite");
  }
}

std::span<const float> Dataset::row_features(std::int64_t row) const {
  return {features.data() + row * feature_count, static_cast<std::size_t>(feature_count)};
}

std::span<const float> Dataset::row_targets(std::int64_t row) const {
  return {targets.data() + row * target_width, static_cast<std::size_t>(target_width)};
}

int Dataset::class_count() const {
  if (!class_names.empty()) return static_cast<int>(class_names.size());
  if (targets.empty()) return 0;
  return static_cast<int>(*std::max_element(targets.begin(), targets.end())) + 1;
}

Standardization Standardization::fit(const Dataset& data) {
  data.validate();
  // The first row as the shift: the streamed fit below takes the same one, and the exact sums
  // make both the same bits.
  const std::vector<float> zeros(static_cast<std::size_t>(data.feature_count), 0.0f);
  detail::FeatureMoments moments(data.rows > 0 ? data.row_features(0) : zeros);
  moments.add(data);
  return moments.result();
}

Standardization Standardization::fit(DataStream& stream) {
  std::optional<detail::FeatureMoments> moments;
  int feature_count = -1;
  Dataset chunk;
  stream.rewind();
  while (stream.next(chunk)) {
    chunk.validate();
    if (feature_count >= 0 && chunk.feature_count != feature_count) {
      throw Error("standardization: the stream's chunks have different feature counts");
    }
    feature_count = chunk.feature_count;
    if (chunk.rows == 0) continue;
    if (!moments) moments.emplace(chunk.row_features(0));
    moments->add(chunk);
  }
  stream.rewind();
  if (moments) return moments->result();
  if (feature_count < 0) return {};
  // Chunks without rows: what fitting an empty dataset gives.
  const std::vector<float> zeros(static_cast<std::size_t>(feature_count), 0.0f);
  return detail::FeatureMoments(zeros).result();
}

void Standardization::apply(Dataset& data) const {
  if (mean.size() != static_cast<std::size_t>(data.feature_count) || scale.size() != mean.size()) {
    throw Error("standardization: fitted on " + std::to_string(mean.size()) +
                " features, the dataset has " + std::to_string(data.feature_count));
  }
  const std::size_t n = mean.size();
  // A pass over every value: in parallel (in the caller's arena), since loading and streaming
  // wait for it. Each value's result does not depend on the split.
  const std::int64_t grain = std::max<std::int64_t>(1, 16384 / std::max<std::size_t>(n, 1));
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, data.rows, grain),
                    [&](const tbb::blocked_range<std::int64_t>& rows) {
                      for (std::int64_t r = rows.begin(); r < rows.end(); ++r) {
                        float* x = data.features.data() + r * data.feature_count;
                        for (std::size_t j = 0; j < n; ++j) x[j] = (x[j] - mean[j]) / scale[j];
                      }
                    });
}

void use_class_names(Dataset& data, const std::vector<std::string>& names) {
  if (data.class_names == names) return;
  if (data.class_names.empty()) throw Error("dataset: its targets are not class labels");
  std::vector<float> index_of(data.class_names.size());
  for (std::size_t i = 0; i < data.class_names.size(); ++i) {
    const auto found = std::find(names.begin(), names.end(), data.class_names[i]);
    if (found == names.end()) {
      throw Error("dataset: class label '" + data.class_names[i] +
                  "' does not occur in the training data");
    }
    index_of[i] = static_cast<float>(found - names.begin());
  }
  for (float& t : data.targets) t = index_of[static_cast<std::size_t>(t)];
  data.class_names = names;
}

std::pair<Dataset, Dataset> split_validation(const Dataset& data, double fraction,
                                             std::uint64_t seed) {
  data.validate(/*allow_missing=*/true);  // the imputation is fit after the split
  if (!(fraction > 0.0 && fraction < 1.0)) {
    throw Error("validation split: the fraction must be in (0, 1), got " +
                std::to_string(fraction));
  }
  if (data.rows < 2) throw Error("validation split: needs at least 2 rows");
  const std::int64_t held_out = std::clamp<std::int64_t>(
      std::llround(fraction * static_cast<double>(data.rows)), 1, data.rows - 1);
  // The rows with the `held_out` smallest keys of a counter-based hash of (seed, row) form the
  // validation set: a seeded random subset, independent of threads and of the file's chunking.
  std::vector<std::pair<std::uint64_t, std::int64_t>> keys(static_cast<std::size_t>(data.rows));
  for (std::int64_t r = 0; r < data.rows; ++r) {
    keys[r] = {
        detail::random_bits(seed, detail::RngPurpose::split, 0, static_cast<std::uint64_t>(r)), r};
  }
  std::nth_element(keys.begin(), keys.begin() + held_out, keys.end());
  std::vector<char> in_validation(static_cast<std::size_t>(data.rows), 0);
  for (std::int64_t i = 0; i < held_out; ++i) in_validation[keys[i].second] = 1;

  std::pair<Dataset, Dataset> parts{detail::empty_like(data, data.rows - held_out),
                                    detail::empty_like(data, held_out)};
  for (std::int64_t r = 0; r < data.rows; ++r) {
    detail::append_row(in_validation[r] ? parts.second : parts.first, data, r);
  }
  return parts;
}

}  // namespace shardprop
