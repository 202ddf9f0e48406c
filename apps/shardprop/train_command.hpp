// `shardprop train`: read a CSV, build the model from flags, train, write safetensors.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace shardprop::cli {

struct TrainOptions {
  std::string data;
  std::string validation;
  double validation_split = 0.0;
  std::vector<std::string> targets;
  std::vector<std::string> ignore;
  std::string delimiter = ",";
  bool no_header = false;
  bool no_standardize = false;
  bool cache = false;
  bool stream = false;
  double stream_above_mb = 0.0;  // 0: a quarter of physical memory
  double shuffle_buffer_mb = 64.0;
  std::string cache_dir;
  std::vector<int> layers{16, 16};
  std::string activation = "relu";
  std::string loss = "xent";
  int epochs = 10;
  int batch_size = 32;
  float learning_rate = 0.1f;
  float weight_decay = 0.0f;
  int threads = 0;
  int shards = 0;
  std::uint64_t seed = 1;
  bool no_shuffle = false;
  bool batch_norm = false;
  std::string init;
  std::string out;
};

CLI::App* add_train_command(CLI::App& app, TrainOptions& options);
int run_train(const TrainOptions& options);

}  // namespace shardprop::cli
