// Model weights as safetensors files with PyTorch nn.Sequential state_dict names and shapes,
// so torch's load_state_dict reads them. Writes are atomic: a crash leaves the old file or
// the new one, never a torn one.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "shardprop/model.hpp"

namespace shardprop {

// Writes every tensor of the model (float32, little-endian) plus string metadata under
// "__metadata__" (the model spec is always stored as "shardprop.model").
void save_safetensors(const Model& model, const std::filesystem::path& path,
                      const std::map<std::string, std::string>& metadata = {});

// Loads weights into an existing model. Validates the header bounds, JSON, dtypes, shapes and
// offsets; every tensor of the model must be present with its exact shape. Throws Error
// naming the file and the tensor; the model is unchanged on error.
void load_safetensors(Model& model, const std::filesystem::path& path);

// A model rebuilt from a file this library wrote: the architecture from its "shardprop.model"
// metadata, then load_safetensors. Throws Error naming the file and what is wrong.
Model load_model(const std::filesystem::path& path);

// The string metadata of a safetensors file (validated like load_safetensors does).
std::map<std::string, std::string> read_safetensors_metadata(const std::filesystem::path& path);

}  // namespace shardprop
