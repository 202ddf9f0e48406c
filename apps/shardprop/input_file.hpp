// The --data options' check: an existing file, or "-" for standard input.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace shardprop::cli {

inline const CLI::Validator kInputFile(
    [](std::string& path) { return path == "-" ? std::string() : CLI::ExistingFile(path); },
    "FILE (or - for standard input)", "INPUT");

}  // namespace shardprop::cli
