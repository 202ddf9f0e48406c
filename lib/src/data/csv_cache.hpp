// Where read_csv_cached (dataset.hpp) keeps a parsed CSV: the name is a function of the file, its
// size and modification time, the parse options and the library version.
#pragma once

#include <filesystem>

#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// The cache file read_csv_cached uses for these arguments (empty cache_directory: the CSV
// file's directory).
std::filesystem::path csv_cache_path(const std::filesystem::path& path, const CsvOptions& options,
                                     const std::filesystem::path& cache_directory = {});

}  // namespace shardprop::detail
