// The CsvOptions both CSV targets read from an input's first three bytes, and the checks every
// dataset read_csv returns must pass.
//   byte 0: bit 0 no header, bits 1-2 target kind (automatic, numeric, classes, automatic),
//           bit 3 allow nan/inf features, bit 4 no target, bit 5 ignore column "1",
//           bit 6 target column "0" (else the last)
//   byte 1: the delimiter (',', ';', tab, '|', space, 'x', and '"', which is rejected)
//   byte 2: chunk_bytes (1 to 4 MB, and 0, which is rejected)
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <set>
#include <string>

#include "fuzz_support.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

namespace shardprop::fuzz {

inline CsvOptions csv_options(InputBytes& input) {
  CsvOptions options;
  const std::uint8_t flags = input.take();
  options.header = (flags & 1) == 0;
  constexpr std::array kinds{TargetKind::automatic, TargetKind::numeric, TargetKind::classes,
                             TargetKind::automatic};
  options.target_kind = kinds[(flags >> 1) & 3];
  options.allow_non_finite = (flags & 8) != 0;
  options.no_target = (flags & 16) != 0;
  if ((flags & 32) != 0) options.ignore = {"1"};
  if ((flags & 64) != 0) options.targets = {"0"};
  options.delimiter = input.pick(std::array{',', ';', '\t', '|', ' ', 'x', '"'});
  options.chunk_bytes =
      input.pick(std::array<std::size_t, 10>{1, 2, 3, 5, 8, 16, 64, 4096, std::size_t{4} << 20, 0});
  return options;
}

// What every dataset read_csv returns must satisfy, whatever the input.
inline void check_dataset(const Dataset& data, const CsvOptions& options) {
  const auto rows = static_cast<std::size_t>(data.rows);
  FUZZ_CHECK(data.rows >= 0, "negative row count");
  FUZZ_CHECK(data.feature_count >= 1, "no feature column");
  FUZZ_CHECK(data.target_width == (options.no_target ? 0 : 1), "unexpected target width");
  FUZZ_CHECK(data.features.size() == rows * static_cast<std::size_t>(data.feature_count),
             "features do not fill rows × feature_count");
  FUZZ_CHECK(data.targets.size() == rows * static_cast<std::size_t>(data.target_width),
             "targets do not fill rows × target_width");
  FUZZ_CHECK(data.feature_names.size() == static_cast<std::size_t>(data.feature_count),
             "one name per feature");
  FUZZ_CHECK(data.target_names.size() == static_cast<std::size_t>(data.target_width),
             "one name per target");
  FUZZ_CHECK(std::all_of(data.targets.begin(), data.targets.end(),
                         [](float t) { return std::isfinite(t); }),
             "a target that is not finite");
  if (!options.allow_non_finite) {
    FUZZ_CHECK(std::all_of(data.features.begin(), data.features.end(),
                           [](float x) { return std::isfinite(x); }),
               "a feature that is not finite without allow_non_finite");
  }
  if (options.target_kind == TargetKind::classes) {
    FUZZ_CHECK(options.no_target || data.rows == 0 || !data.class_names.empty(),
               "class targets without class names");
  }
  if (!data.class_names.empty()) {
    const std::set<std::string> distinct(data.class_names.begin(), data.class_names.end());
    FUZZ_CHECK(distinct.size() == data.class_names.size(), "a class name appears twice");
    const auto classes = static_cast<float>(data.class_names.size());
    FUZZ_CHECK(std::all_of(data.targets.begin(), data.targets.end(),
                           [&](float t) { return t >= 0 && t < classes && std::floor(t) == t; }),
               "a class index outside the class names");
  }
}

}  // namespace shardprop::fuzz
