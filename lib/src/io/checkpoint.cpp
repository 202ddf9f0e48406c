// safetensors I/O: 8-byte little-endian header length, a JSON header, then raw tensor bytes.
// The loader treats the file as hostile: every length and offset is checked before use.
#include "shardprop/checkpoint.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <zlib.h>

#include "base/atomic_file.hpp"
#include "shardprop/error.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"

namespace shardprop {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; big-endian hosts need byte swapping");

using nlohmann::json;

// A header larger than this is rejected before it is read (PyTorch's own limit is 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;

constexpr const char* kChecksumKey = "shardprop.checksum";
constexpr const char* kStateKey = "shardprop.state";
constexpr std::string_view kOptimizerPrefix = "optimizer.";

// CRC-32 (zlib's, the polynomial of gzip and PNG) of the data section, as "crc32:8 hex digits".
// It catches a torn or bit-rotted file; it is not a defence against deliberate tampering.
class Crc32 {
 public:
  void add(const void* data, std::size_t size) {
    const auto* bytes = static_cast<const Bytef*>(data);
    while (size > 0) {
      const auto chunk = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
      crc_ = ::crc32(crc_, bytes, chunk);
      bytes += chunk;
      size -= chunk;
    }
  }
  std::string text() const {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08lx", crc_);
    return std::string("crc32:") + hex;
  }

 private:
  uLong crc_ = ::crc32(0L, Z_NULL, 0);
};

// A float as the double nearest to its shortest decimal, so the JSON shows "1e-05" rather
// than the float's exact value 9.999999747378752e-06, and reads back as the same float.
double json_float(float value) {
  if (!std::isfinite(value)) return value;
  char text[32];
  const std::to_chars_result written = std::to_chars(text, text + sizeof text, value);
  double shortest = 0.0;
  const std::from_chars_result read = std::from_chars(text, written.ptr, shortest);
  if (read.ec != std::errc() || static_cast<float>(shortest) != value) return value;
  return shortest;
}

std::string spec_to_json(const ModelSpec& spec) {
  json layers = json::array();
  for (const LayerSpec& layer : spec.layers) {
    if (const auto* d = std::get_if<DenseSpec>(&layer)) {
      layers.push_back("dense(" + std::to_string(d->units) + ")");
    } else if (const auto* b = std::get_if<BatchNormSpec>(&layer)) {
      layers.push_back(
          {{"batchnorm",
            {{"epsilon", json_float(b->epsilon)}, {"momentum", json_float(b->momentum)}}}});
    } else if (const auto* dropout = std::get_if<DropoutSpec>(&layer)) {
      layers.push_back({{"dropout", json_float(dropout->rate)}});
    } else {
      layers.push_back(std::string(to_string(std::get<ActivationSpec>(layer).activation)));
    }
  }
  return json{{"inputs", spec.inputs}, {"layers", layers}, {"loss", to_string(spec.loss)}}.dump();
}

// The inverse of spec_to_json; every malformed piece is an Error naming the file.
ModelSpec spec_from_json(const std::string& text, const std::string& file) {
  auto fail = [&](const std::string& what) -> ModelSpec {
    throw Error(file + ": metadata 'shardprop.model': " + what);
  };
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("inputs") || !j["inputs"].is_number_integer() ||
      !j.contains("layers") || !j["layers"].is_array() || !j.contains("loss") ||
      !j["loss"].is_string()) {
    return fail("not a model description (inputs, layers, loss)");
  }
  ModelSpec spec;
  spec.inputs = j["inputs"].get<int>();
  try {
    spec.loss = parse_loss(j["loss"].get<std::string>());
  } catch (const Error& e) {
    return fail(e.what());
  }
  for (const json& layer : j["layers"]) {
    if (layer.is_string()) {
      const std::string name = layer.get<std::string>();
      int units = 0;
      if (std::sscanf(name.c_str(), "dense(%d)", &units) == 1) {
        spec.layers.emplace_back(DenseSpec{units});
        continue;
      }
      try {
        spec.layers.emplace_back(ActivationSpec{parse_activation(name)});
      } catch (const Error& e) {
        return fail(e.what());
      }
      continue;
    }
    if (layer.is_object() && layer.contains("batchnorm") && layer["batchnorm"].is_object()) {
      const json& b = layer["batchnorm"];
      BatchNormSpec bn;
      if (!b.value("epsilon", json()).is_number() || !b.value("momentum", json()).is_number()) {
        return fail("batch norm needs numeric epsilon and momentum");
      }
      bn.epsilon = b["epsilon"].get<float>();
      bn.momentum = b["momentum"].get<float>();
      spec.layers.emplace_back(bn);
      continue;
    }
    if (layer.is_object() && layer.contains("dropout") && layer["dropout"].is_number()) {
      spec.layers.emplace_back(DropoutSpec{layer["dropout"].get<float>()});
      continue;
    }
    return fail("unknown layer " + layer.dump());
  }
  return spec;
}

// Float tensors are F32; batch-norm num_batches_tracked is I64, as in PyTorch.
bool is_counter(const TensorInfo& t) { return t.role == TensorRole::batch_counter; }
const char* dtype_of(const TensorInfo& t) { return is_counter(t) ? "I64" : "F32"; }
std::size_t element_size(const TensorInfo& t) {
  return is_counter(t) ? sizeof(std::int64_t) : sizeof(float);
}
const void* source_of(const Model& model, const TensorInfo& t) {
  if (is_counter(t)) return model.counters().data() + t.offset;
  return model.parameters().data() + t.offset;
}

struct ParsedFile {
  std::vector<char> bytes;
  json header;
  std::size_t data_begin = 0;  // offset of the data section in bytes
};

ParsedFile parse_file(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(file + ": cannot open for reading");
  ParsedFile parsed;
  parsed.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(file + ": read error");
  const std::size_t size = parsed.bytes.size();
  if (size < 8) {
    throw Error(file + ": truncated: " + std::to_string(size) +
                " bytes, a safetensors file starts with an 8-byte header length");
  }
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, parsed.bytes.data(), 8);
  if (header_length > kMaxHeaderBytes || header_length > size - 8) {
    throw Error(file + ": header length " + std::to_string(header_length) + " exceeds the file (" +
                std::to_string(size) + " bytes) or the 100 MB limit");
  }
  try {
    parsed.header = json::parse(parsed.bytes.begin() + 8, parsed.bytes.begin() + 8 + header_length);
  } catch (const json::exception& e) {
    throw Error(file + ": header is not valid JSON: " + e.what());
  }
  if (!parsed.header.is_object()) throw Error(file + ": header is not a JSON object");
  parsed.data_begin = 8 + header_length;
  const std::size_t data_size = size - parsed.data_begin;

  struct Range {
    std::uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : parsed.header.items()) {
    const std::string where = file + ": tensor '" + name + "'";
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(file + ": __metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw Error(file + ": metadata '" + key + "' is not a string");
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      throw Error(where + ": needs dtype, shape and data_offsets");
    }
    const json& dtype = entry["dtype"];
    const json& shape = entry["shape"];
    const json& offsets = entry["data_offsets"];
    if (!dtype.is_string()) throw Error(where + ": dtype is not a string");
    if (!shape.is_array()) throw Error(where + ": shape is not an array");
    std::uint64_t elements = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned())
        throw Error(where + ": shape has a non-integer or negative dimension");
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (dim != 0 && elements > (std::uint64_t{1} << 62) / dim)
        throw Error(where + ": shape overflows");
      elements *= dim;
    }
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      throw Error(where + ": data_offsets must be two non-negative integers");
    }
    const std::uint64_t begin = offsets[0].get<std::uint64_t>();
    const std::uint64_t end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > data_size) {
      throw Error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] lie outside the " + std::to_string(data_size) + "-byte data section");
    }
    const std::string type = dtype.get<std::string>();
    const std::uint64_t element_size = type == "F32" || type == "I32"                     ? 4
                                       : type == "F64" || type == "I64"                   ? 8
                                       : type == "F16" || type == "BF16" || type == "I16" ? 2
                                       : type == "U8" || type == "I8" || type == "BOOL"   ? 1
                                                                                          : 0;
    if (element_size == 0) throw Error(where + ": unknown dtype '" + type + "'");
    if (end - begin != elements * element_size) {
      throw Error(where + ": " + std::to_string(end - begin) + " bytes do not match shape × " +
                  type + " (" + std::to_string(elements * element_size) + " bytes)");
    }
    ranges.push_back({begin, end, name});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      throw Error(file + ": tensors '" + ranges[i - 1].name + "' and '" + ranges[i].name +
                  "' overlap");
    }
  }
  // Files this library writes carry a checksum; files from elsewhere (PyTorch) may not.
  if (parsed.header.contains("__metadata__") &&
      parsed.header["__metadata__"].contains(kChecksumKey)) {
    const std::string expected = parsed.header["__metadata__"][kChecksumKey].get<std::string>();
    Crc32 crc;
    crc.add(parsed.bytes.data() + parsed.data_begin, data_size);
    if (crc.text() != expected) {
      throw Error(file + ": checksum mismatch: the tensor data gives " + crc.text() +
                  ", the header says " + expected + " (the file is damaged)");
    }
  }
  return parsed;
}

// The bytes of tensor `name`, after checking it is present with this dtype and shape (its
// offsets and size were checked by parse_file).
const char* expected_tensor(const ParsedFile& parsed, const std::string& file,
                            const std::string& name, const char* dtype,
                            const std::vector<std::int64_t>& shape) {
  const std::string where = file + ": tensor '" + name + "'";
  if (!parsed.header.contains(name)) throw Error(where + " is missing");
  const json& entry = parsed.header[name];
  if (entry["dtype"] != dtype) {
    throw Error(where + ": dtype " + entry["dtype"].get<std::string>() + ", expected " + dtype);
  }
  if (entry["shape"].get<std::vector<std::int64_t>>() != shape) {
    throw Error(where + ": shape " + entry["shape"].dump() + " does not match the model's " +
                json(shape).dump());
  }
  return parsed.bytes.data() + parsed.data_begin + entry["data_offsets"][0].get<std::uint64_t>();
}

// Every float finite; with `variance`, none negative either.
void check_floats(const char* bytes, std::size_t count, const std::string& where, bool variance) {
  for (std::size_t i = 0; i < count; ++i) {
    float value = 0.0f;
    std::memcpy(&value, bytes + i * sizeof value, sizeof value);
    if (!std::isfinite(value)) {
      throw Error(where + ": element " + std::to_string(i) + " is not finite");
    }
    if (variance && value < 0.0f) {
      throw Error(where + ": element " + std::to_string(i) + " is a negative variance");
    }
  }
}

// A tensor to write: its header entry and where its bytes are.
struct OutputTensor {
  std::string name;
  const char* dtype;
  std::vector<std::int64_t> shape;
  const void* data;
  std::size_t bytes;
};

std::vector<OutputTensor> model_tensors(const Model& model) {
  std::vector<OutputTensor> out;
  for (const TensorInfo& t : model.tensors()) {
    out.push_back({t.name, dtype_of(t), t.shape, source_of(model, t), t.size * element_size(t)});
  }
  return out;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<OutputTensor>& tensors,
                       json meta) {
  json header = json::object();
  std::size_t offset = 0;
  Crc32 crc;
  for (const OutputTensor& t : tensors) {
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes}}};
    offset += t.bytes;
    crc.add(t.data, t.bytes);
  }
  meta[kChecksumKey] = crc.text();
  header["__metadata__"] = std::move(meta);
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception&) {
    // The metadata is the caller's text; JSON (and PyTorch's reader) needs UTF-8.
    throw Error(path.string() + ": a metadata value is not valid UTF-8 text; nothing written");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  const std::uint64_t length = text.size();
  std::vector<std::span<const std::byte>> pieces;
  pieces.push_back(std::as_bytes(std::span(&length, 1)));
  pieces.push_back(std::as_bytes(std::span(text)));
  for (const OutputTensor& t : tensors) {
    pieces.push_back({static_cast<const std::byte*>(t.data), t.bytes});
  }
  detail::write_file_atomically(path, pieces);
}

json model_metadata(const Model& model, const std::map<std::string, std::string>& metadata) {
  json meta = json::object();
  for (const auto& [key, value] : metadata) {
    // The writer computes these itself; a caller passing back what it read gets them renewed.
    if (key == kChecksumKey || key == kStateKey) continue;
    meta[key] = value;
  }
  meta["shardprop.model"] = spec_to_json(model.spec());
  meta["shardprop.version"] = version();
  meta["format"] = "pt";
  return meta;
}

}  // namespace

void save_safetensors(const Model& model, const std::filesystem::path& path,
                      const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, model_tensors(model), model_metadata(model, metadata));
}

void save_checkpoint(const Model& model, const Trainer& trainer, const std::filesystem::path& path,
                     const std::map<std::string, std::string>& metadata) {
  std::vector<OutputTensor> tensors = model_tensors(model);
  const std::vector<std::string> slots = trainer.optimizer_state_names();
  for (int slot = 0; slot < static_cast<int>(slots.size()); ++slot) {
    const std::span<const float> state = trainer.optimizer_state(slot);
    for (const TensorInfo& t : model.tensors()) {
      if (!t.trained()) continue;
      tensors.push_back({std::string(kOptimizerPrefix) + t.name + "." + slots[slot], "F32", t.shape,
                         state.data() + t.offset, t.size * sizeof(float)});
    }
  }
  json meta = model_metadata(model, metadata);
  const TrainerSettings& s = trainer.settings();
  meta[kStateKey] = json{
      {"epochs", trainer.epochs_completed()},
      {"steps", trainer.steps_completed()},
      {"optimizer", to_string(s.optimizer)},
      {"optimizer_state",
       slots}}.dump();
  write_safetensors(path, tensors, std::move(meta));
}

void load_safetensors(Model& model, const std::filesystem::path& path) {
  const std::string file = path.string();
  const ParsedFile parsed = parse_file(path);
  std::vector<const char*> sources;
  for (const TensorInfo& t : model.tensors()) {
    const std::string where = file + ": tensor '" + t.name + "'";
    const char* bytes = expected_tensor(parsed, file, t.name, dtype_of(t), t.shape);
    if (is_counter(t)) {
      for (std::size_t i = 0; i < t.size; ++i) {
        std::int64_t value = 0;
        std::memcpy(&value, bytes + i * sizeof value, sizeof value);
        if (value < 0) throw Error(where + ": a batch counter cannot be negative");
      }
    } else {
      check_floats(bytes, t.size, where, t.name.ends_with(".running_var"));
    }
    sources.push_back(bytes);
  }
  for (const auto& [name, entry] : parsed.header.items()) {
    if (name == "__metadata__" || std::string_view(name).starts_with(kOptimizerPrefix)) continue;
    const bool known = std::any_of(model.tensors().begin(), model.tensors().end(),
                                   [&](const TensorInfo& t) { return t.name == name; });
    if (!known) throw Error(file + ": tensor '" + name + "' is not part of this model");
  }
  // Everything validated: only now touch the model.
  for (std::size_t k = 0; k < model.tensors().size(); ++k) {
    const TensorInfo& t = model.tensors()[k];
    void* target = is_counter(t) ? static_cast<void*>(model.counters().data() + t.offset)
                                 : static_cast<void*>(model.parameters().data() + t.offset);
    std::memcpy(target, sources[k], t.size * element_size(t));
  }
}

Model load_model(const std::filesystem::path& path) {
  const std::map<std::string, std::string> metadata = read_safetensors_metadata(path);
  const auto found = metadata.find("shardprop.model");
  if (found == metadata.end()) {
    throw Error(path.string() +
                ": no 'shardprop.model' metadata: the file does not say which model it holds");
  }
  ModelSpec spec = spec_from_json(found->second, path.string());
  std::unique_ptr<Model> model;
  try {
    model = std::make_unique<Model>(std::move(spec));
  } catch (const Error& e) {  // a spec the library rejects, e.g. a zero width
    throw Error(path.string() + ": metadata 'shardprop.model': " + e.what());
  }
  load_safetensors(*model, path);
  return std::move(*model);
}

TrainingProgress load_training_state(Trainer& trainer, const Model& model,
                                     const std::filesystem::path& path) {
  const std::string file = path.string();
  const ParsedFile parsed = parse_file(path);
  auto fail = [&](const std::string& what) -> TrainingProgress { throw Error(file + ": " + what); };
  const json meta = parsed.header.value("__metadata__", json::object());
  if (!meta.contains(kChecksumKey)) return fail("no checksum: not a checkpoint this library wrote");
  if (!meta.contains(kStateKey)) {
    return fail("no 'shardprop.state' metadata: a weights file, not a training checkpoint");
  }
  const json state = json::parse(meta[kStateKey].get<std::string>(), nullptr, false);
  const auto is_string_array = [](const json& j) {
    return j.is_array() &&
           std::all_of(j.begin(), j.end(), [](const json& e) { return e.is_string(); });
  };
  if (!state.is_object() || !state.value("epochs", json()).is_number_unsigned() ||
      !state.value("steps", json()).is_number_unsigned() ||
      !state.value("optimizer", json()).is_string() ||
      !is_string_array(state.value("optimizer_state", json()))) {
    return fail("metadata 'shardprop.state' is malformed (needs epochs, steps, optimizer)");
  }
  const std::vector<std::string> slots = trainer.optimizer_state_names();
  const std::vector<std::string> saved = state["optimizer_state"].get<std::vector<std::string>>();
  const std::string optimizer = state["optimizer"].get<std::string>();
  if (optimizer != to_string(trainer.settings().optimizer) || saved != slots) {
    return fail("optimizer state is for " + optimizer + " " + json(saved).dump() +
                ", this run uses " + std::string(to_string(trainer.settings().optimizer)) + " " +
                json(slots).dump() + " (use the settings the checkpoint was written with)");
  }
  if (state["epochs"].get<std::uint64_t>() > std::numeric_limits<int>::max()) {
    return fail("epoch count out of range");
  }
  if (state["steps"].get<std::uint64_t>() > std::numeric_limits<std::int64_t>::max()) {
    return fail("step count out of range");
  }
  TrainingProgress progress;
  progress.epochs = state["epochs"].get<std::int64_t>();
  progress.steps = state["steps"].get<std::int64_t>();
  // Validate every optimizer tensor before changing the trainer.
  struct Copy {
    std::string name;
    const char* bytes;
    int slot;
    const TensorInfo* tensor;
  };
  std::vector<Copy> copies;
  for (int slot = 0; slot < static_cast<int>(slots.size()); ++slot) {
    for (const TensorInfo& t : model.tensors()) {
      if (!t.trained()) continue;
      const std::string name = std::string(kOptimizerPrefix) + t.name + "." + slots[slot];
      const char* bytes = expected_tensor(parsed, file, name, "F32", t.shape);
      check_floats(bytes, t.size, file + ": tensor '" + name + "'", false);
      copies.push_back({name, bytes, slot, &t});
    }
  }
  for (const auto& [name, entry] : parsed.header.items()) {
    if (!std::string_view(name).starts_with(kOptimizerPrefix)) continue;
    const bool expected =
        std::any_of(copies.begin(), copies.end(), [&](const Copy& c) { return c.name == name; });
    if (!expected) throw Error(file + ": tensor '" + name + "' is not state of this optimizer");
  }
  for (const Copy& c : copies) {
    std::memcpy(trainer.optimizer_state(c.slot).data() + c.tensor->offset, c.bytes,
                c.tensor->size * sizeof(float));
  }
  trainer.set_progress(static_cast<int>(progress.epochs), progress.steps);
  return progress;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::filesystem::path& path) {
  const ParsedFile parsed = parse_file(path);
  std::map<std::string, std::string> metadata;
  if (parsed.header.contains("__metadata__")) {
    for (const auto& [key, value] : parsed.header["__metadata__"].items()) {
      metadata[key] = value.get<std::string>();
    }
  }
  return metadata;
}

}  // namespace shardprop
