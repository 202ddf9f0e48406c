// safetensors I/O: writing model and optimizer tensors with the library's metadata, and the
// loaders over a file read once (io/safetensors_file.hpp checks its structure and checksum).
#include "shardprop/checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/atomic_file.hpp"
#include "io/safetensors_file.hpp"
#include "shardprop/error.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"
#include "train/trainer_access.hpp"

namespace shardprop {
namespace {

using detail::SafetensorsFile;
using detail::TrainerAccess;
using nlohmann::json;

constexpr const char* kChecksumKey = "shardprop.checksum";
constexpr const char* kStateKey = "shardprop.state";
constexpr const char* kModelKey = "shardprop.model";
constexpr std::string_view kOptimizerPrefix = "optimizer.";
// A training run's second copy of the weights (training_run.cpp): "best." in a periodic
// checkpoint, "latest." in the result of a run whose best epoch was not its last.
constexpr std::string_view kRunCopyPrefixes[] = {"best.", "latest."};

// Tensors that are not the model's own but that its loaders leave for others.
bool is_state_tensor(std::string_view name) {
  if (name.starts_with(kOptimizerPrefix)) return true;
  return std::any_of(std::begin(kRunCopyPrefixes), std::end(kRunCopyPrefixes),
                     [&](std::string_view prefix) { return name.starts_with(prefix); });
}

// {"inputs":N,"layers":"<format_layers text>","loss":"xent"}: the layer stack in the grammar
// of docs/model-spec.md, so a new layer kind needs no second encoding here.
std::string spec_to_json(const ModelSpec& spec) {
  return json{{"inputs", spec.inputs},
              {"layers", format_layers(spec.layers)},
              {"loss", to_string(spec.loss)}}
      .dump();
}

// One layer of the JSON list files written before the text form: "dense(N)" or an activation
// name (each exactly one layer of the text grammar, nothing after it), {"batchnorm":{"epsilon":
// E,"momentum":M}} or {"dropout":P}. `fail` throws.
template <class Fail>
LayerSpec legacy_layer(const json& layer, const Fail& fail) {
  if (layer.is_string()) {
    std::vector<LayerSpec> parsed;
    try {
      parsed = parse_layers(layer.get<std::string>());
    } catch (const Error& e) {
      fail("layer " + layer.dump() + ": " + e.what());
    }
    const bool one_plain_layer =
        parsed.size() == 1 && (std::holds_alternative<DenseSpec>(parsed[0]) ||
                               std::holds_alternative<ActivationSpec>(parsed[0]));
    if (!one_plain_layer) fail("unknown layer " + layer.dump());
    return parsed[0];
  }
  if (layer.is_object() && layer.size() == 1 && layer.contains("batchnorm") &&
      layer["batchnorm"].is_object()) {
    const json& b = layer["batchnorm"];
    if (!b.value("epsilon", json()).is_number() || !b.value("momentum", json()).is_number()) {
      fail("batch norm needs numeric epsilon and momentum");
    }
    BatchNormSpec bn;
    bn.epsilon = b["epsilon"].get<float>();
    bn.momentum = b["momentum"].get<float>();
    return bn;
  }
  if (layer.is_object() && layer.size() == 1 && layer.contains("dropout") &&
      layer["dropout"].is_number()) {
    return DropoutSpec{layer["dropout"].get<float>()};
  }
  fail("unknown layer " + layer.dump());
  return {};  // not reached: fail throws
}

// The inverse of spec_to_json, also reading the JSON layer list of older files; every
// malformed piece is an Error naming the file and the key.
ModelSpec spec_from_json(const std::string& text, const std::string& file) {
  const auto fail = [&](const std::string& what) {
    throw Error(file + ": metadata '" + kModelKey + "': " + what);
  };
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("inputs") || !j["inputs"].is_number_integer() ||
      !j.contains("layers") || !(j["layers"].is_string() || j["layers"].is_array()) ||
      !j.contains("loss") || !j["loss"].is_string()) {
    fail("not a model description (inputs, layers, loss)");
  }
  ModelSpec spec;
  const auto inputs = j["inputs"].get<std::int64_t>();
  if (inputs < 0 || inputs > std::numeric_limits<int>::max()) fail("inputs out of range");
  spec.inputs = static_cast<int>(inputs);
  try {
    spec.loss = parse_loss(j["loss"].get<std::string>());
    if (j["layers"].is_string()) spec.layers = parse_layers(j["layers"].get<std::string>());
  } catch (const Error& e) {
    fail(e.what());
  }
  if (j["layers"].is_array()) {
    for (const json& layer : j["layers"]) spec.layers.push_back(legacy_layer(layer, fail));
  }
  return spec;
}

// The weights and biases of the dense layers, a lower bound on the floats of a model of this
// spec, counted in a double so that no width overflows it.
double dense_parameter_count(const ModelSpec& spec) {
  double count = 0.0;
  double width = spec.inputs;
  for (const LayerSpec& layer : spec.layers) {
    if (const auto* dense = std::get_if<DenseSpec>(&layer); dense != nullptr && dense->units > 0) {
      count += (std::max(width, 0.0) + 1.0) * dense->units;
      width = dense->units;
    }
  }
  return count;
}

// Float tensors are F32; batch-norm num_batches_tracked is I64, as in PyTorch.
bool is_counter(const TensorInfo& t) { return t.role == TensorRole::batch_counter; }
const char* dtype_of(const TensorInfo& t) { return is_counter(t) ? "I64" : "F32"; }
std::size_t element_size(const TensorInfo& t) {
  return is_counter(t) ? sizeof(std::int64_t) : sizeof(float);
}
const void* source_of(const detail::CheckpointWeights& w, const TensorInfo& t) {
  if (is_counter(t)) return w.counters.data() + t.offset;
  return w.parameters.data() + t.offset;
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

// The tensors of `model`'s layout holding the values of `weights`, named PREFIX + NAME.
void add_model_tensors(std::vector<OutputTensor>& out, const Model& model,
                       const detail::CheckpointWeights& weights) {
  if (weights.parameters.size() != model.parameters().size() ||
      weights.counters.size() != model.counters().size()) {
    throw Error("a copy of the weights '" + weights.prefix + "' does not have the model's layout");
  }
  for (const TensorInfo& t : model.tensors()) {
    out.push_back({weights.prefix + t.name, dtype_of(t), t.shape, source_of(weights, t),
                   t.size * element_size(t)});
  }
}

std::vector<OutputTensor> model_tensors(const Model& model) {
  std::vector<OutputTensor> out;
  add_model_tensors(out, model, {"", model.parameters(), model.counters()});
  return out;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<OutputTensor>& tensors,
                       json meta) {
  json header = json::object();
  std::size_t offset = 0;
  detail::Crc32 crc;
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
  meta[kModelKey] = spec_to_json(model.spec());
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
  const detail::CheckpointWeights own[] = {{"", model.parameters(), model.counters()}};
  detail::save_checkpoint(model, own, trainer, path, metadata);
}

void detail::save_checkpoint(const Model& model, std::span<const CheckpointWeights> weights,
                             const Trainer& trainer, const std::filesystem::path& path,
                             const std::map<std::string, std::string>& metadata) {
  std::vector<OutputTensor> tensors;
  for (const CheckpointWeights& w : weights) add_model_tensors(tensors, model, w);
  const std::vector<std::string> slots = TrainerAccess::optimizer_state_names(trainer);
  for (int slot = 0; slot < static_cast<int>(slots.size()); ++slot) {
    const std::span<const float> state = TrainerAccess::optimizer_state(trainer, slot);
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

namespace {

// The bytes of every model tensor stored under `prefix` + its name, checked (dtype, shape,
// finite floats, non-negative counters) before anything is copied.
std::vector<const char*> checked_tensor_bytes(const Model& model,
                                              const detail::SafetensorsFile& parsed,
                                              const std::string& prefix) {
  std::vector<const char*> sources;
  for (const TensorInfo& t : model.tensors()) {
    const std::string name = prefix + t.name;
    const std::string where = parsed.name() + ": tensor '" + name + "'";
    const char* bytes = parsed.tensor(name, dtype_of(t), t.shape);
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
  return sources;
}

// The checked tensors into a model's layout of parameters and counters.
void copy_tensors(const Model& model, const std::vector<const char*>& sources,
                  std::span<float> parameters, std::span<std::int64_t> counters) {
  for (std::size_t k = 0; k < model.tensors().size(); ++k) {
    const TensorInfo& t = model.tensors()[k];
    void* target = is_counter(t) ? static_cast<void*>(counters.data() + t.offset)
                                 : static_cast<void*>(parameters.data() + t.offset);
    std::memcpy(target, sources[k], t.size * element_size(t));
  }
}

}  // namespace

void detail::load_safetensors(Model& model, const SafetensorsFile& parsed) {
  const std::string& file = parsed.name();
  const std::vector<const char*> sources = checked_tensor_bytes(model, parsed, "");
  // Keys by name, not structured bindings: clang before 16 (the fuzz targets' compiler) cannot
  // capture a binding in a lambda.
  for (const auto& item : parsed.header().items()) {
    const std::string& name = item.key();
    if (name == "__metadata__" || is_state_tensor(name)) continue;
    const bool known = std::any_of(model.tensors().begin(), model.tensors().end(),
                                   [&](const TensorInfo& t) { return t.name == name; });
    if (!known) throw Error(file + ": tensor '" + name + "' is not part of this model");
  }
  // Everything validated: only now touch the model.
  copy_tensors(model, sources, model.parameters(), model.counters());
}

bool detail::load_weights_copy(const Model& model, const SafetensorsFile& parsed,
                               const std::string& prefix, std::span<float> parameters,
                               std::span<std::int64_t> counters) {
  if (!parsed.header().contains(prefix + model.tensors().front().name)) return false;
  if (parameters.size() != model.parameters().size() ||
      counters.size() != model.counters().size()) {
    throw Error(parsed.name() + ": a copy of the weights '" + prefix + "' does not fit the model");
  }
  copy_tensors(model, checked_tensor_bytes(model, parsed, prefix), parameters, counters);
  return true;
}

Model detail::load_model(const SafetensorsFile& parsed) {
  const std::string& file = parsed.name();
  const std::string* text = parsed.metadata_value(kModelKey);
  if (text == nullptr) {
    throw Error(file + ": no '" + kModelKey +
                "' metadata: the file does not say which model it holds");
  }
  ModelSpec spec = spec_from_json(*text, file);
  // The metadata sizes the model, and a damaged file may claim any widths: a model whose
  // weights the file cannot hold is refused before its parameters are allocated.
  const double weight_bytes = dense_parameter_count(spec) * sizeof(float);
  if (weight_bytes > static_cast<double>(parsed.data_size())) {
    char needed[32];
    std::snprintf(needed, sizeof needed, "%.0f", weight_bytes);
    throw Error(file + ": metadata '" + kModelKey + "': the model's weights take " + needed +
                " bytes, more than the file's " + std::to_string(parsed.data_size()) +
                " bytes of tensor data");
  }
  std::unique_ptr<Model> model;
  try {
    model = std::make_unique<Model>(std::move(spec));
  } catch (const Error& e) {  // a spec the library rejects, e.g. a zero width
    throw Error(file + ": metadata '" + kModelKey + "': " + e.what());
  }
  load_safetensors(*model, parsed);
  return std::move(*model);
}

TrainingProgress detail::load_training_state(Trainer& trainer, const Model& model,
                                             const SafetensorsFile& parsed) {
  const std::string& file = parsed.name();
  auto fail = [&](const std::string& what) -> TrainingProgress { throw Error(file + ": " + what); };
  if (parsed.metadata_value(kChecksumKey) == nullptr) {
    return fail("no checksum: not a checkpoint this library wrote");
  }
  const std::string* state_text = parsed.metadata_value(kStateKey);
  if (state_text == nullptr) {
    return fail("no 'shardprop.state' metadata: a weights file, not a training checkpoint");
  }
  const json state = json::parse(*state_text, nullptr, false);
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
  const std::vector<std::string> slots = TrainerAccess::optimizer_state_names(trainer);
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
      const char* bytes = parsed.tensor(name, "F32", t.shape);
      check_floats(bytes, t.size, file + ": tensor '" + name + "'", false);
      copies.push_back({name, bytes, slot, &t});
    }
  }
  for (const auto& item : parsed.header().items()) {
    const std::string& name = item.key();  // see load_safetensors
    if (!std::string_view(name).starts_with(kOptimizerPrefix)) continue;
    const bool expected =
        std::any_of(copies.begin(), copies.end(), [&](const Copy& c) { return c.name == name; });
    if (!expected) throw Error(file + ": tensor '" + name + "' is not state of this optimizer");
  }
  for (const Copy& c : copies) {
    std::memcpy(TrainerAccess::optimizer_state(trainer, c.slot).data() + c.tensor->offset, c.bytes,
                c.tensor->size * sizeof(float));
  }
  TrainerAccess::set_progress(trainer, static_cast<int>(progress.epochs), progress.steps);
  return progress;
}

void load_safetensors(Model& model, const std::filesystem::path& path) {
  detail::load_safetensors(model, SafetensorsFile::read(path));
}

Model load_model(const std::filesystem::path& path) {
  return detail::load_model(SafetensorsFile::read(path));
}

TrainingProgress load_training_state(Trainer& trainer, const Model& model,
                                     const std::filesystem::path& path) {
  return detail::load_training_state(trainer, model, SafetensorsFile::read(path));
}

std::map<std::string, std::string> read_safetensors_metadata(const std::filesystem::path& path) {
  return SafetensorsFile::read(path).metadata();
}

}  // namespace shardprop
