// A safetensors file read and validated once: its bytes, its JSON header and its string
// metadata. The loaders take one of these, so a file is read and checksummed once however many
// parts of it (weights, optimizer state, metadata) a caller needs. Internal to lib/src/io.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include <zlib.h>

#include "shardprop/checkpoint.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trained_model.hpp"
#include "shardprop/trainer.hpp"

namespace shardprop::detail {

// CRC-32 (zlib's, the polynomial of gzip and PNG) of the data section, as "crc32:8 hex digits".
// It catches a torn or bit-rotted file; it is not a defence against deliberate tampering.
class Crc32 {
 public:
  void add(const void* data, std::size_t size);
  std::string text() const;

 private:
  uLong crc_ = ::crc32(0L, Z_NULL, 0);
};

class SafetensorsFile {
 public:
  // Reads the whole file and checks its structure before anything is used: the 8-byte header
  // length, a JSON object header within the 100 MB limit, string metadata, every tensor's
  // dtype, shape and data_offsets inside the data section, no overlaps, and the CRC-32 of the
  // data section when "shardprop.checksum" is present. Throws Error naming the file.
  static SafetensorsFile read(const std::filesystem::path& path);

  // The path as text, the prefix of every message about this file.
  const std::string& name() const { return name_; }
  const nlohmann::json& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The metadata value of `key`, or nullptr.
  const std::string* metadata_value(const std::string& key) const;
  // Bytes of tensor data after the header (every tensor lies within them).
  std::size_t data_size() const { return bytes_.size() - data_begin_; }

  // The bytes of tensor `name` after checking it is present with this dtype and shape.
  // Throws Error "FILE: tensor 'NAME': what".
  const char* tensor(const std::string& tensor_name, const char* dtype,
                     const std::vector<std::int64_t>& shape) const;

 private:
  std::string name_;
  std::vector<char> bytes_;
  nlohmann::json header_;
  std::map<std::string, std::string> metadata_;
  std::size_t data_begin_ = 0;  // offset of the data section in bytes
};

// One set of values for a model's tensors (float and counter arrays in the model's layout),
// written under PREFIX + each tensor's name; the model's own have an empty prefix.
struct CheckpointWeights {
  std::string prefix;
  std::span<const float> parameters;
  std::span<const std::int64_t> counters;
};

// save_checkpoint (checkpoint.hpp) writing, in place of the model's own values, each of
// `weights` in turn (a training run's result with its latest weights as "latest.NAME", or a
// periodic checkpoint with its best weights as "best.NAME"). The loaders ignore "best." and
// "latest." tensors as they ignore "optimizer." ones.
void save_checkpoint(const Model& model, std::span<const CheckpointWeights> weights,
                     const Trainer& trainer, const std::filesystem::path& path,
                     const std::map<std::string, std::string>& metadata);
// Reads the tensors PREFIX + NAME (for every tensor NAME of the model, validated as
// load_safetensors does) into arrays of the model's layout. false, touching nothing, when the
// file holds no such copy. Throws Error "FILE: tensor 'PREFIX.NAME': what".
bool load_weights_copy(const Model& model, const SafetensorsFile& file, const std::string& prefix,
                       std::span<float> parameters, std::span<std::int64_t> counters);

// The loaders of checkpoint.hpp on a file already read (same checks, same messages).
void load_safetensors(Model& model, const SafetensorsFile& file);
Model load_model(const SafetensorsFile& file);
TrainingProgress load_training_state(Trainer& trainer, const Model& model,
                                     const SafetensorsFile& file);
TrainedModel load_trained_model(const SafetensorsFile& file);

}  // namespace shardprop::detail
