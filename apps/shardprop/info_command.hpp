// `shardprop info FILE`: what a weights file holds, from its tensors and metadata.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace shardprop::cli {

struct InfoOptions {
  std::string model;
};

CLI::App* add_info_command(CLI::App& app, InfoOptions& options);
int run_info(const InfoOptions& options);

}  // namespace shardprop::cli
