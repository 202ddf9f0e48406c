// `shardprop info`: loads the model through the public API (which validates the whole file and
// its metadata) and prints its architecture, size and the provenance the metadata records.
#include "info_command.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "shardprop/model.hpp"
#include "shardprop/trained_model.hpp"

namespace shardprop::cli {

CLI::App* add_info_command(CLI::App& app, InfoOptions& o) {
  CLI::App* cmd = app.add_subcommand("info", "Describe a weights file written by shardprop");
  cmd->add_option("model", o.model, "The .safetensors file")->required()->check(CLI::ExistingFile);
  return cmd;
}

namespace {

// A list of names, shortened for the terminal.
std::string list_text(const std::vector<std::string>& names, std::size_t shown) {
  std::string text;
  for (std::size_t i = 0; i < names.size() && i < shown; ++i) {
    text += (i > 0 ? ", " : "") + names[i];
  }
  if (names.size() > shown) text += ", ... (" + std::to_string(names.size()) + " in all)";
  return text;
}

// How missing cells were read and filled in (the default, policy error, prints nothing).
void print_imputation(const TrainedModel& file) {
  const Imputation& imputation = file.imputation;
  if (!file.metadata.contains(kImputationKey)) return;
  std::vector<std::string> tokens;
  for (const std::string& token : file.na_values) tokens.push_back("'" + token + "'");
  std::printf("missing:     %s; tokens %s\n", std::string(to_string(imputation.policy)).c_str(),
              tokens.empty() ? "none" : list_text(tokens, 16).c_str());
  if (imputation.fill.empty()) return;
  std::vector<std::string> fill;
  for (const float value : imputation.fill) {
    char text[32];
    std::snprintf(text, sizeof text, "%.7g", static_cast<double>(value));
    fill.push_back(text);
  }
  std::printf("fill:        %s\n", list_text(fill, 8).c_str());
}

// A tensor of the file as its safetensors header lists it.
struct FileTensor {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
  std::int64_t elements = 1;
};

// The tensors of a file whose names start with `prefix` ("optimizer.": a checkpoint's momentum
// or Adam state; "latest." / "best.": the second copy of the weights a run with early stopping
// keeps), in file order. The file was validated by load_trained_model: the header is well formed.
std::vector<FileTensor> prefixed_tensors(const std::string& path, std::string_view prefix) {
  std::ifstream in(path, std::ios::binary);
  std::uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), sizeof length);  // little-endian, as the host
  std::string text(static_cast<std::size_t>(length), '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  const nlohmann::json header = nlohmann::json::parse(text, nullptr, false);
  std::vector<std::pair<std::int64_t, FileTensor>> found;  // by data offset: file order
  if (!in || !header.is_object()) return {};
  for (const auto& [name, entry] : header.items()) {
    if (!std::string_view(name).starts_with(prefix) || !entry.is_object()) continue;
    FileTensor t;
    t.name = name;
    t.dtype = entry.value("dtype", "");
    for (const nlohmann::json& d : entry.value("shape", nlohmann::json::array())) {
      t.shape.push_back(d.get<std::int64_t>());
      t.elements *= t.shape.back();
    }
    const nlohmann::json offsets = entry.value("data_offsets", nlohmann::json::array());
    found.emplace_back(offsets.empty() ? 0 : offsets[0].get<std::int64_t>(), std::move(t));
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<FileTensor> tensors;
  for (auto& entry : found) tensors.push_back(std::move(entry.second));
  return tensors;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text;
  for (const std::int64_t d : shape) text += (text.empty() ? "" : ", ") + std::to_string(d);
  return "[" + text + "]";
}

}  // namespace

int run_info(const InfoOptions& o) {
  const TrainedModel file = load_trained_model(o.model);
  const Model& model = file.model;
  auto meta = [&](const std::string& key) {
    const auto found = file.metadata.find(key);
    return found == file.metadata.end() ? std::string() : found->second;
  };
  std::error_code size_error;
  const std::uintmax_t bytes = std::filesystem::file_size(o.model, size_error);
  std::printf("file:        %s (%ju bytes), written by shardprop %s\n", o.model.c_str(),
              size_error ? std::uintmax_t{0} : bytes, meta("shardprop.version").c_str());
  std::printf("model:       %d inputs ->", model.inputs());
  std::printf(" %s", format_layers(model.spec().layers).c_str());
  std::printf(" -> %d outputs; loss %s\n", model.outputs(),
              std::string(to_string(model.spec().loss)).c_str());
  std::size_t trained = 0;
  std::size_t state = 0;
  for (const TensorInfo& t : model.tensors()) (t.trained() ? trained : state) += t.size;
  std::printf("parameters:  %zu trained", trained);
  if (state > 0) std::printf(", %zu batch-norm running statistics and counters", state);
  const std::vector<FileTensor> optimizer = prefixed_tensors(o.model, "optimizer.");
  std::size_t optimizer_values = 0;
  for (const FileTensor& t : optimizer) optimizer_values += static_cast<std::size_t>(t.elements);
  if (!optimizer.empty()) std::printf(", %zu optimizer state", optimizer_values);
  std::size_t model_bytes = 0;
  for (const TensorInfo& t : model.tensors()) {
    model_bytes += t.size * (t.role == TensorRole::batch_counter ? 8 : 4);
  }
  std::printf("\nmodel tensors: %zu, %zu bytes\n", model.tensors().size(), model_bytes);
  for (const TensorInfo& t : model.tensors()) {
    std::printf("  %-36s %s %s\n", t.name.c_str(),
                t.role == TensorRole::batch_counter ? "I64" : "F32", shape_text(t.shape).c_str());
  }
  if (!optimizer.empty()) {
    // Not part of a PyTorch state_dict: what --resume needs to continue the optimizer exactly.
    std::printf("optimizer tensors: %zu, %zu bytes\n", optimizer.size(),
                optimizer_values * sizeof(float));
    for (const FileTensor& t : optimizer) {
      std::printf("  %-36s %s %s\n", t.name.c_str(), t.dtype.c_str(), shape_text(t.shape).c_str());
    }
  }
  // With early stopping a file can hold two copies of the weights: --out the best epoch's as
  // the model and the latest (which --resume continues) as "latest.*", a periodic checkpoint
  // the other way round with "best.*".
  for (const auto& [prefix, role] :
       {std::pair<const char*, const char*>{"latest.",
                                            "the latest weights, which --resume continues"},
        std::pair<const char*, const char*>{"best.", "the best epoch's weights"}}) {
    const std::vector<FileTensor> copy = prefixed_tensors(o.model, prefix);
    if (copy.empty()) continue;
    std::printf("%s* tensors: %zu (%s)\n", prefix, copy.size(), role);
    for (const FileTensor& t : copy) {
      std::printf("  %-36s %s %s\n", t.name.c_str(), t.dtype.c_str(), shape_text(t.shape).c_str());
    }
  }
  if (!meta("shardprop.data").empty()) {
    std::printf("trained on:  %s, %s epochs, seed %s\n", meta("shardprop.data").c_str(),
                meta("shardprop.epochs").c_str(), meta("shardprop.seed").c_str());
  }
  if (!file.feature_names.empty()) {
    std::printf("features:    %s\n", list_text(file.feature_names, 8).c_str());
  }
  if (!file.target_names.empty()) {
    std::printf("targets:     %s\n", list_text(file.target_names, 8).c_str());
  }
  if (!file.class_names.empty()) {
    // Without recorded names the classes are the output indices.
    std::printf("classes:     %s%s\n", list_text(file.class_names, 12).c_str(),
                file.metadata.contains(kClassesKey) ? "" : " (no names recorded)");
  }
  for (const CategoricalColumn& column : file.categorical) {
    std::printf("categorical: %s: %zu categories (inputs %s=...)\n", column.column.c_str(),
                column.categories.size(), column.column.c_str());
  }
  std::printf("standardize: %s\n", file.standardization.empty()
                                       ? "no (features are used as they are)"
                                       : "yes (z-score statistics of the training data stored)");
  print_imputation(file);
  // What `shardprop train` recorded to resume the run: its settings and where it stands.
  if (const auto options = file.metadata.find("shardprop.train_options");
      options != file.metadata.end()) {
    const nlohmann::json j = nlohmann::json::parse(options->second, nullptr, false);
    if (j.is_object()) {
      std::string text;
      for (const char* key : {"optimizer", "lr", "momentum", "nesterov", "weight-decay",
                              "batch-size", "lr-schedule", "clip-grad-norm", "dropout", "epochs",
                              "early-stopping", "restarts", "shards", "seed"}) {
        if (!j.contains(key)) continue;
        const nlohmann::json& v = j[key];
        std::string value = v.is_string() ? v.get<std::string>() : v.dump();
        if (v.is_number_float()) {
          char number[32];
          std::snprintf(number, sizeof number, "%.7g", v.get<double>());
          value = number;
        }
        text += (text.empty() ? "" : ", ") + std::string(key) + " " + value;
      }
      std::printf("settings:    %s\n", text.c_str());
    }
  }
  if (const auto progress = file.metadata.find("shardprop.state");
      progress != file.metadata.end()) {
    const nlohmann::json j = nlohmann::json::parse(progress->second, nullptr, false);
    if (j.is_object()) {
      std::printf("checkpoint:  %s epochs, %s steps done; optimizer state %s\n",
                  j.value("epochs", nlohmann::json()).dump().c_str(),
                  j.value("steps", nlohmann::json()).dump().c_str(),
                  j.value("optimizer_state", nlohmann::json::array()).dump().c_str());
    }
  }
  return 0;
}

}  // namespace shardprop::cli
