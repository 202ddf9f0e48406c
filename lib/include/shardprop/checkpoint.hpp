// Model weights as safetensors files with PyTorch nn.Sequential state_dict names and shapes,
// so torch's load_state_dict reads them. Writes are atomic: a crash leaves the old file or
// the new one, never a torn one.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"

namespace shardprop {

// Writes every tensor of the model (float32, little-endian) plus string metadata under
// "__metadata__" (the model spec is always stored as "shardprop.model", and a CRC-32 of the
// tensor data as "shardprop.checksum", which every loader verifies). Values given for
// "shardprop.checksum" and "shardprop.state" are replaced by the writer's own (so metadata
// read from one file can be passed when writing another).
void save_safetensors(const Model& model, const std::filesystem::path& path,
                      const std::map<std::string, std::string>& metadata = {});

// A training checkpoint: the model's tensors as save_safetensors writes them (so PyTorch's
// load_state_dict still reads the weights once the "optimizer." tensors are dropped), the
// trainer's optimizer state as tensors "optimizer.<tensor>.<slot>" (slots named as torch.optim's
// state keys: "momentum_buffer", or "exp_avg" and "exp_avg_sq") and its epoch and step counters
// as "shardprop.state".
// Atomic like save_safetensors.
void save_checkpoint(const Model& model, const Trainer& trainer, const std::filesystem::path& path,
                     const std::map<std::string, std::string>& metadata = {});

struct TrainingProgress {
  std::int64_t epochs = 0;
  std::int64_t steps = 0;
};

// Restores what save_checkpoint stored beyond the weights into a trainer built on `model`
// (load the weights first, with load_model or load_safetensors): optimizer state and the
// epoch and step counters. The trainer's optimizer must be the checkpoint's. Validates every
// tensor first; throws Error naming the file and tensor, leaving the trainer unchanged.
TrainingProgress load_training_state(Trainer& trainer, const Model& model,
                                     const std::filesystem::path& path);

// Loads weights into an existing model. Validates the header bounds, JSON, dtypes, shapes,
// offsets and the checksum when present; every tensor of the model must be present with its
// exact shape, and no other tensor but optimizer state ("optimizer.*", ignored here). Throws
// Error naming the file and the tensor; the model is unchanged on error.
void load_safetensors(Model& model, const std::filesystem::path& path);

// A model rebuilt from a file this library wrote: the architecture from its "shardprop.model"
// metadata, then load_safetensors. Throws Error naming the file and what is wrong.
Model load_model(const std::filesystem::path& path);

// The string metadata of a safetensors file (validated like load_safetensors does). The layer
// stack is stored under "shardprop.model" in the text form of format_layers().
std::map<std::string, std::string> read_safetensors_metadata(const std::filesystem::path& path);

}  // namespace shardprop
