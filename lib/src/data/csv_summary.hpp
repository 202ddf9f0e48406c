// summarize_csv (shardprop/csv_summary.hpp) with the size of the blocks it reads, so that tests
// can make a small file span many blocks.
#pragma once

#include <cstddef>
#include <filesystem>

#include "shardprop/csv_summary.hpp"

namespace shardprop::detail {

inline constexpr std::size_t kSummaryBlockBytes = std::size_t{32} << 20;

// Blocks of about block_bytes (>= 1; raised to fit a record longer than a block).
CsvSummary summarize_csv(const std::filesystem::path& path, const CsvOptions& options,
                         std::size_t block_bytes);

}  // namespace shardprop::detail
