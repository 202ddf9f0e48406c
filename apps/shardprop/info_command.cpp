// `shardprop info`: loads the model through the public API (which validates the whole file and
// its metadata) and prints its architecture, size and the provenance the metadata records.
#include "info_command.hpp"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
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

}  // namespace

int run_info(const InfoOptions& o) {
  const TrainedModel file = load_trained_model(o.model);
  const Model& model = file.model;
  auto meta = [&](const std::string& key) {
    const auto found = file.metadata.find(key);
    return found == file.metadata.end() ? std::string() : found->second;
  };
  std::printf("file:        %s (%ju bytes), written by shardprop %s\n", o.model.c_str(),
              static_cast<std::uintmax_t>(std::filesystem::file_size(o.model)),
              meta("shardprop.version").c_str());
  std::printf("model:       %d inputs ->", model.inputs());
  std::printf(" %s", format_layers(model.spec().layers).c_str());
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
  std::printf("standardize: %s\n", file.standardization.empty()
                                       ? "no (features are used as they are)"
                                       : "yes (z-score statistics of the training data stored)");
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
