// `shardprop info`: loads the model through the public API (which validates the whole file)
// and prints its architecture, size and the provenance the metadata records.
#include "info_command.hpp"

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"

namespace shardprop::cli {

CLI::App* add_info_command(CLI::App& app, InfoOptions& o) {
  CLI::App* cmd = app.add_subcommand("info", "Describe a weights file written by shardprop");
  cmd->add_option("model", o.model, "The .safetensors file")->required()->check(CLI::ExistingFile);
  return cmd;
}

namespace {

std::string layer_text(const LayerSpec& layer) {
  if (const auto* d = std::get_if<DenseSpec>(&layer))
    return "dense(" + std::to_string(d->units) + ")";
  if (std::holds_alternative<BatchNormSpec>(layer)) return "batchnorm";
  if (const auto* d = std::get_if<DropoutSpec>(&layer)) {
    return "dropout(" + std::to_string(d->rate) + ")";
  }
  return std::string(to_string(std::get<ActivationSpec>(layer).activation));
}

// A JSON array from the metadata, shortened for the terminal.
std::string list_text(const std::string& json_text, std::size_t shown) {
  const nlohmann::json list = nlohmann::json::parse(json_text, nullptr, false);
  if (!list.is_array()) return json_text;
  std::string text;
  for (std::size_t i = 0; i < list.size() && i < shown; ++i) {
    text +=
        (i > 0 ? ", " : "") + (list[i].is_string() ? list[i].get<std::string>() : list[i].dump());
  }
  if (list.size() > shown) text += ", ... (" + std::to_string(list.size()) + " in all)";
  return text;
}

}  // namespace

int run_info(const InfoOptions& o) {
  const Model model = load_model(o.model);
  const std::map<std::string, std::string> metadata = read_safetensors_metadata(o.model);
  auto meta = [&](const std::string& key) {
    const auto found = metadata.find(key);
    return found == metadata.end() ? std::string() : found->second;
  };
  std::printf("file:        %s (%ju bytes), written by shardprop %s\n", o.model.c_str(),
              static_cast<std::uintmax_t>(std::filesystem::file_size(o.model)),
              meta("shardprop.version").c_str());
  std::printf("model:       %d inputs ->", model.inputs());
  for (const LayerSpec& layer : model.spec().layers) std::printf(" %s", layer_text(layer).c_str());
  std::printf(" -> %d outputs; loss %s\n", model.outputs(),
              std::string(to_string(model.spec().loss)).c_str());
  std::size_t trained = 0;
  std::size_t state = 0;
  for (const TensorInfo& t : model.tensors()) (t.trained() ? trained : state) += t.size;
  std::printf("parameters:  %zu trained", trained);
  if (state > 0) std::printf(", %zu batch-norm running statistics and counters", state);
  std::printf("\ntensors:\n");
  for (const TensorInfo& t : model.tensors()) {
    std::string shape;
    for (const std::int64_t d : t.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    std::printf("  %-24s %s [%s]\n", t.name.c_str(),
                t.role == TensorRole::batch_counter ? "I64" : "F32", shape.c_str());
  }
  if (!meta("shardprop.data").empty()) {
    std::printf("trained on:  %s, %s epochs, seed %s\n", meta("shardprop.data").c_str(),
                meta("shardprop.epochs").c_str(), meta("shardprop.seed").c_str());
  }
  if (!meta("shardprop.targets").empty()) {
    std::printf("targets:     %s\n", list_text(meta("shardprop.targets"), 8).c_str());
  }
  if (!meta("shardprop.classes").empty()) {
    std::printf("classes:     %s\n", list_text(meta("shardprop.classes"), 12).c_str());
  }
  std::printf("standardize: %s\n", meta("shardprop.standardization").empty()
                                       ? "no (features are used as they are)"
                                       : "yes (z-score statistics of the training data stored)");
  return 0;
}

}  // namespace shardprop::cli
