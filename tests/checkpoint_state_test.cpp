// Training checkpoints: save_checkpoint + load_model + load_training_state restore weights,
// optimizer state and counters, so a resumed run continues bit for bit like an uninterrupted
// one; the file stays a plain weights file for load_safetensors; every damaged or mismatched
// file is an Error naming the file and the problem, with the trainer left as it was. Leaves out
// the weights-only format's own checks (checkpoint_test).
#include <catch2/catch.hpp>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "parameter_check.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "test_util.hpp"
#include "train/trainer_access.hpp"

namespace {

using Catch::Matchers::Contains;
using nlohmann::json;
using shardprop::Activation;
using shardprop::LearningRateSchedule;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::Optimizer;
using shardprop::TensorInfo;
using shardprop::Trainer;
using shardprop::TrainerSettings;
using shardprop::detail::TrainerAccess;
using shardprop::test::copy_of;
using shardprop::test::read_bytes;
using shardprop::test::same_bits;
using shardprop::test::TempDir;
using shardprop::test::thrown_message;
using shardprop::test::uniform_pm1;
using shardprop::test::write_bytes;

constexpr int kInputs = 6;
constexpr int kClasses = 3;

// 6 → 10 [→ batch norm] → tanh → dropout(0.2) → 3, xent.
ModelSpec spec_for(bool batch_norm) {
  const int hidden[] = {10};
  return ModelSpec::mlp(kInputs, hidden, kClasses, Activation::tanh, Loss::xent, batch_norm, 0.2f);
}

// 45 rows: five minibatches of 8 and one of 5 an epoch, reshuffled each epoch.
const shardprop::Dataset& dataset() {
  static const shardprop::Dataset data = [] {
    std::mt19937_64 bits(5);
    shardprop::Dataset d;
    d.rows = 45;
    d.feature_count = kInputs;
    d.target_width = 1;
    for (int i = 0; i < 45 * kInputs; ++i) d.features.push_back(1.5f * uniform_pm1(bits));
    for (int r = 0; r < 45; ++r) d.targets.push_back(static_cast<float>(bits() % kClasses));
    return d;
  }();
  return data;
}

// Every piece of trainer state matters to the next epoch: the shuffle and the dropout masks
// (epoch and step counters), the step schedule's rate (epoch), the optimizer's buffers.
TrainerSettings settings_for(Optimizer optimizer, float momentum, int threads = 1) {
  TrainerSettings s;
  s.threads = threads;
  s.shards = 2;
  s.batch_size = 8;
  s.seed = 41;
  s.optimizer = optimizer;
  s.learning_rate = optimizer == Optimizer::adam ? 0.01f : 0.1f;
  s.momentum = momentum;
  s.weight_decay = 0.01f;
  s.schedule = LearningRateSchedule::step;
  s.schedule_step_epochs = 1;
  s.schedule_gamma = 0.7f;
  return s;
}

Model initial_model(bool batch_norm) {
  Model model(spec_for(batch_norm));
  model.initialize(3);
  return model;
}

// What a trainer holds that a checkpoint must carry.
struct TrainerSnapshot {
  std::vector<std::vector<float>> state;
  int epochs = 0;
  std::int64_t steps = 0;
};

TrainerSnapshot snapshot(const Trainer& trainer) {
  TrainerSnapshot s;
  for (int slot = 0; slot < static_cast<int>(TrainerAccess::optimizer_state_names(trainer).size());
       ++slot) {
    s.state.push_back(copy_of(TrainerAccess::optimizer_state(trainer, slot)));
  }
  s.epochs = trainer.epochs_completed();
  s.steps = trainer.steps_completed();
  return s;
}

bool same_snapshot(const TrainerSnapshot& a, const TrainerSnapshot& b) {
  if (a.state.size() != b.state.size() || a.epochs != b.epochs || a.steps != b.steps) return false;
  for (std::size_t slot = 0; slot < a.state.size(); ++slot) {
    if (!same_bits(a.state[slot], b.state[slot])) return false;
  }
  return true;
}

bool same_counters(const Model& a, const Model& b) {
  return std::equal(a.counters().begin(), a.counters().end(), b.counters().begin(),
                    b.counters().end());
}

// ---- Editing safetensors files: header as JSON, data section as bytes ----

struct SafetensorsFile {
  json header;
  std::vector<char> data;
};

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  const std::vector<char> bytes = read_bytes(path);
  REQUIRE(bytes.size() >= 8);
  std::uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);  // little-endian host (the library asserts it)
  REQUIRE(length <= bytes.size() - 8);
  const auto header_end = bytes.begin() + 8 + static_cast<std::ptrdiff_t>(length);
  return {json::parse(bytes.begin() + 8, header_end), {header_end, bytes.end()}};
}

// zlib's CRC-32 of the data section, in the library's "crc32:8 hex digits" form.
std::string checksum_of(const std::vector<char>& data) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  crc = ::crc32(crc, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size()));
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08lx", crc);
  return std::string("crc32:") + hex;
}

// Writes the file back with a checksum that matches its data (when it has one), so that what
// a test changed is the only thing wrong with it.
void write_safetensors(const std::filesystem::path& path, SafetensorsFile file) {
  json& meta = file.header["__metadata__"];
  if (meta.contains("shardprop.checksum")) meta["shardprop.checksum"] = checksum_of(file.data);
  std::string text = file.header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t length = text.size();
  std::vector<char> bytes(8 + text.size() + file.data.size());
  std::memcpy(bytes.data(), &length, 8);
  std::memcpy(bytes.data() + 8, text.data(), text.size());
  std::memcpy(bytes.data() + 8 + text.size(), file.data.data(), file.data.size());
  write_bytes(path, bytes);
}

// The byte offset in the data section of element `element` of a float tensor.
std::size_t element_offset(const SafetensorsFile& file, const std::string& name,
                           std::size_t element) {
  REQUIRE(file.header.contains(name));
  return file.header[name]["data_offsets"][0].get<std::size_t>() + element * sizeof(float);
}

void put_float(SafetensorsFile& file, const std::string& name, std::size_t element, float value) {
  std::memcpy(file.data.data() + element_offset(file, name, element), &value, sizeof value);
}

// Appends a float tensor of `shape` (zeros) to the file.
void add_tensor(SafetensorsFile& file, const std::string& name, std::vector<std::int64_t> shape) {
  std::size_t elements = 1;
  for (std::int64_t d : shape) elements *= static_cast<std::size_t>(d);
  const std::size_t begin = file.data.size();
  file.data.resize(begin + elements * sizeof(float), '\0');
  file.header[name] = {
      {"dtype", "F32"}, {"shape", shape}, {"data_offsets", {begin, file.data.size()}}};
}

void train(Trainer& trainer, int epochs) {
  for (int e = 0; e < epochs; ++e) trainer.train_epoch(dataset());
}

}  // namespace

TEST_CASE(
    "save_checkpoint, then load_model, a fresh trainer and load_training_state restore the "
    "weights, the optimizer state and the counters",
    "[checkpoint]") {
  const auto [name, optimizer, momentum] = GENERATE(table<std::string, Optimizer, float>({
      {"sgd", Optimizer::sgd, 0.0f},
      {"momentum", Optimizer::sgd, 0.9f},
      {"adam", Optimizer::adam, 0.0f},
  }));
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(name, batch_norm);
  TempDir dir;
  const auto path = dir / "run.safetensors";
  Model model = initial_model(batch_norm);
  Trainer trainer(model, settings_for(optimizer, momentum));
  train(trainer, 2);
  shardprop::save_checkpoint(model, trainer, path, {{"note", "after two epochs"}});

  Model restored = shardprop::load_model(path);
  Trainer resumed(restored, settings_for(optimizer, momentum));
  const shardprop::TrainingProgress progress =
      shardprop::load_training_state(resumed, restored, path);

  CHECK(progress.epochs == 2);
  CHECK(progress.steps == trainer.steps_completed());
  CHECK(same_bits(restored.parameters(), model.parameters()));
  CHECK(same_counters(restored, model));
  CHECK(same_snapshot(snapshot(resumed), snapshot(trainer)));
  CHECK(resumed.learning_rate() == trainer.learning_rate());
  CHECK(shardprop::read_safetensors_metadata(path).at("note") == "after two epochs");
  // The state is not trivially zero, so restoring it was tested.
  for (int slot = 0; slot < static_cast<int>(TrainerAccess::optimizer_state_names(trainer).size());
       ++slot) {
    const std::span<const float> state = TrainerAccess::optimizer_state(trainer, slot);
    CHECK(std::any_of(state.begin(), state.end(), [](float v) { return v != 0.0f; }));
  }
}

TEST_CASE(
    "Training resumed from a checkpoint continues bit for bit like the uninterrupted run, with "
    "dropout and batch norm",
    "[checkpoint][determinism]") {
  const auto [name, optimizer, momentum] = GENERATE(table<std::string, Optimizer, float>({
      {"sgd", Optimizer::sgd, 0.0f},
      {"momentum", Optimizer::sgd, 0.9f},
      {"adam", Optimizer::adam, 0.0f},
  }));
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(name, batch_norm);
  TempDir dir;
  const auto path = dir / "run.safetensors";

  Model uninterrupted = initial_model(batch_norm);
  Trainer trainer(uninterrupted, settings_for(optimizer, momentum));
  train(trainer, 2);
  shardprop::save_checkpoint(uninterrupted, trainer, path);
  std::vector<double> losses;
  for (int e = 0; e < 2; ++e) losses.push_back(trainer.train_epoch(dataset()).loss);

  // Resumed in another process, as it were: a new model and trainer, on two threads.
  Model model = shardprop::load_model(path);
  Trainer resumed(model, settings_for(optimizer, momentum, 2));
  shardprop::load_training_state(resumed, model, path);
  std::vector<double> resumed_losses;
  for (int e = 0; e < 2; ++e) resumed_losses.push_back(resumed.train_epoch(dataset()).loss);

  CHECK(same_bits(model.parameters(), uninterrupted.parameters()));
  CHECK(same_counters(model, uninterrupted));
  CHECK(same_snapshot(snapshot(resumed), snapshot(trainer)));
  CHECK(std::memcmp(resumed_losses.data(), losses.data(), losses.size() * sizeof(double)) == 0);

  // Without the training state the continuation differs: the test can see a lost piece.
  Model weights_only = shardprop::load_model(path);
  Trainer restarted(weights_only, settings_for(optimizer, momentum));
  train(restarted, 2);
  CHECK_FALSE(same_bits(weights_only.parameters(), uninterrupted.parameters()));
}

TEST_CASE(
    "A checkpoint holds the model's tensors plus optimizer.<tensor>.<slot> and loads with "
    "load_safetensors into the plain model",
    "[checkpoint]") {
  const auto [name, optimizer, momentum, slots] =
      GENERATE(table<std::string, Optimizer, float, std::vector<std::string>>({
          {"sgd", Optimizer::sgd, 0.0f, {}},
          {"momentum", Optimizer::sgd, 0.9f, {"momentum_buffer"}},
          {"adam", Optimizer::adam, 0.0f, {"exp_avg", "exp_avg_sq"}},
      }));
  CAPTURE(name);
  TempDir dir;
  const auto path = dir / "run.safetensors";
  Model model = initial_model(true);
  Trainer trainer(model, settings_for(optimizer, momentum));
  train(trainer, 1);
  REQUIRE(TrainerAccess::optimizer_state_names(trainer) == slots);
  shardprop::save_checkpoint(model, trainer, path);

  const SafetensorsFile file = read_safetensors(path);
  std::set<std::string> expected = {"__metadata__"};
  for (const TensorInfo& t : model.tensors()) {
    expected.insert(t.name);
    if (!t.trained()) continue;
    for (const std::string& slot : slots) {
      const std::string state_name = "optimizer." + t.name + "." + slot;
      expected.insert(state_name);
      CAPTURE(state_name);
      CHECK(file.header[state_name]["dtype"] == "F32");
      CHECK(file.header[state_name]["shape"].get<std::vector<std::int64_t>>() == t.shape);
    }
  }
  std::set<std::string> names;
  for (const auto& [key, value] : file.header.items()) names.insert(key);
  CHECK(names == expected);

  const json state = json::parse(file.header["__metadata__"]["shardprop.state"].get<std::string>());
  CHECK(state["epochs"] == 1);
  CHECK(state["steps"] == trainer.steps_completed());
  CHECK(state["optimizer"] == std::string(to_string(optimizer)));

  Model plain(spec_for(true));
  shardprop::load_safetensors(plain, path);
  CHECK(same_bits(plain.parameters(), model.parameters()));
  CHECK(same_counters(plain, model));
}

TEST_CASE(
    "A damaged or mismatched checkpoint gives an Error naming the file and the problem and "
    "leaves the trainer unchanged",
    "[checkpoint]") {
  TempDir dir;
  const auto good = dir / "good.safetensors";
  const auto path = dir / "bad.safetensors";
  const std::string file = path.string();
  {
    Model model = initial_model(true);
    Trainer trainer(model, settings_for(Optimizer::adam, 0.0f));
    train(trainer, 1);
    shardprop::save_checkpoint(model, trainer, good);
  }
  SafetensorsFile contents = read_safetensors(good);

  // The trainer under test has state of its own (another run's), which must survive.
  Model model = shardprop::load_model(good);
  Trainer trainer(model, settings_for(Optimizer::adam, 0.0f));
  train(trainer, 2);
  const TrainerSnapshot before = snapshot(trainer);

  auto expect_error = [&](const std::vector<std::string>& fragments) {
    const std::string message = thrown_message<shardprop::Error>(
        [&] { shardprop::load_training_state(trainer, model, path); });
    CAPTURE(message);
    CHECK_THAT(message, Contains(file));
    for (const std::string& fragment : fragments) CHECK_THAT(message, Contains(fragment));
    CHECK(same_snapshot(snapshot(trainer), before));
  };
  auto expect_rewritten_error = [&](const std::vector<std::string>& fragments) {
    write_safetensors(path, contents);
    expect_error(fragments);
  };

  SECTION("a flipped data byte fails the checksum, in every loader") {
    const std::string tensor = GENERATE(as<std::string>{}, "0.weight", "optimizer.0.weight.exp_avg",
                                        "optimizer.4.bias.exp_avg_sq");
    CAPTURE(tensor);
    std::vector<char> bytes = read_bytes(good);
    const std::size_t header_bytes = bytes.size() - contents.data.size();
    bytes[header_bytes + element_offset(contents, tensor, 1)] ^= 0x10;
    write_bytes(path, bytes);
    expect_error({"checksum"});
    Model plain(spec_for(true));
    CHECK_THAT(thrown_message<shardprop::Error>([&] { shardprop::load_safetensors(plain, path); }),
               Contains("checksum") && Contains(file));
    CHECK_THAT(thrown_message<shardprop::Error>([&] { shardprop::load_model(path); }),
               Contains("checksum"));
  }
  SECTION("a truncated file") {
    const std::vector<char> bytes = read_bytes(good);
    const std::size_t header_bytes = bytes.size() - contents.data.size();
    const auto [where, size, fragment] =
        GENERATE_COPY(table<std::string, std::size_t, std::string>({
            {"inside the length", 5, "truncated"},
            {"inside the header", header_bytes / 2, "exceeds the file"},
            {"inside the data", bytes.size() - 6, "outside"},
        }));
    CAPTURE(where, size);
    write_bytes(path, std::vector<char>(bytes.begin(), bytes.begin() + size));
    expect_error({fragment});
  }
  SECTION("an optimizer tensor is missing") {
    const std::string tensor =
        GENERATE(as<std::string>{}, "optimizer.0.weight.exp_avg", "optimizer.4.bias.exp_avg_sq");
    CAPTURE(tensor);
    contents.header.erase(tensor);
    expect_rewritten_error({"'" + tensor + "' is missing"});
  }
  SECTION("an optimizer tensor has the wrong shape") {
    // Same element count, so only the shape is wrong: [10, 6] as [6, 10] or [60].
    const json shape = GENERATE(json::array({6, 10}), json::array({60}));
    CAPTURE(shape.dump());
    contents.header["optimizer.0.weight.exp_avg"]["shape"] = shape;
    expect_rewritten_error({"'optimizer.0.weight.exp_avg'", "shape", shape.dump()});
  }
  SECTION("an optimizer tensor holds a NaN or an infinity") {
    const float value =
        GENERATE(std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity());
    CAPTURE(value);
    put_float(contents, "optimizer.1.bias.exp_avg_sq", 3, value);
    expect_rewritten_error({"'optimizer.1.bias.exp_avg_sq'", "element 3", "not finite"});
  }
  SECTION("an optimizer tensor this optimizer does not have") {
    const std::string tensor = GENERATE(as<std::string>{}, "optimizer.0.weight.momentum_buffer",
                                        "optimizer.7.weight.exp_avg", "optimizer.extra");
    CAPTURE(tensor);
    add_tensor(contents, tensor, {2});
    expect_rewritten_error({"'" + tensor + "'", "not state of this optimizer"});
  }
  SECTION("a checkpoint of another optimizer") {
    const auto [name, optimizer, momentum] = GENERATE(table<std::string, Optimizer, float>({
        {"momentum", Optimizer::sgd, 0.9f},
        {"sgd", Optimizer::sgd, 0.0f},
    }));
    CAPTURE(name);
    Model other = shardprop::load_model(good);
    Trainer other_trainer(other, settings_for(optimizer, momentum));
    train(other_trainer, 1);
    shardprop::save_checkpoint(other, other_trainer, path);
    expect_error({"optimizer state is for sgd", "adam"});
  }
  SECTION("a weights-only file") {
    shardprop::save_safetensors(model, path);
    expect_error({"not a training checkpoint"});
  }
  SECTION("a file without a checksum") {
    contents.header["__metadata__"].erase("shardprop.checksum");
    expect_rewritten_error({"no checksum"});
  }
  SECTION("counters in shardprop.state beyond what a trainer counts") {
    const auto [what, epochs, steps] = GENERATE(table<std::string, std::uint64_t, std::uint64_t>({
        {"epochs above INT_MAX", std::uint64_t{1} << 31, 6},
        {"steps above INT64_MAX", 1, std::uint64_t{1} << 63},
    }));
    CAPTURE(what);
    const json state = {{"epochs", epochs},
                        {"steps", steps},
                        {"optimizer", "adam"},
                        {"optimizer_state", {"exp_avg", "exp_avg_sq"}}};
    contents.header["__metadata__"]["shardprop.state"] = state.dump();
    expect_rewritten_error({"count out of range"});
  }
  SECTION("malformed shardprop.state metadata") {
    const std::string state = GENERATE(
        as<std::string>{}, "not json", "[1, 2]", "{}",
        R"({"epochs": -1, "steps": 6, "optimizer": "adam", "optimizer_state": []})",
        R"({"epochs": 1, "optimizer": "adam", "optimizer_state": ["exp_avg", "exp_avg_sq"]})",
        R"({"epochs": 1, "steps": 6, "optimizer": 3, "optimizer_state": []})",
        R"({"epochs": 1, "steps": 6, "optimizer": "adam", "optimizer_state": "exp_avg"})",
        R"({"epochs": 1, "steps": 6, "optimizer": "adam", "optimizer_state": [1, 2]})");
    CAPTURE(state);
    contents.header["__metadata__"]["shardprop.state"] = state;
    expect_rewritten_error({"shardprop.state", "malformed"});
  }
}

TEST_CASE("the writers renew the library's own metadata keys instead of copying the caller's",
          "[checkpoint]") {
  const std::string key = GENERATE(as<std::string>{}, "shardprop.checksum", "shardprop.state");
  CAPTURE(key);
  TempDir dir;
  Model model = initial_model(false);
  Trainer trainer(model, settings_for(Optimizer::sgd, 0.9f));
  train(trainer, 1);
  const std::map<std::string, std::string> metadata = {{key, "mine"}, {"user.note", "kept"}};
  shardprop::save_safetensors(model, dir / "a.safetensors", metadata);
  shardprop::save_checkpoint(model, trainer, dir / "b.safetensors", metadata);
  const auto a = shardprop::read_safetensors_metadata(dir / "a.safetensors");
  const auto b = shardprop::read_safetensors_metadata(dir / "b.safetensors");
  CHECK(a.at("user.note") == "kept");
  CHECK(a.count("shardprop.state") == 0);  // a weights file has no training state
  CHECK_THAT(a.at("shardprop.checksum"), Catch::Matchers::StartsWith("crc32:"));
  CHECK_THAT(b.at("shardprop.checksum"), Catch::Matchers::StartsWith("crc32:"));
  CHECK_THAT(b.at("shardprop.state"), Contains("\"epochs\":1"));
  // And both load: the checksum is the real one.
  Model again = initial_model(false);
  Trainer resumed(again, settings_for(Optimizer::sgd, 0.9f));
  CHECK_NOTHROW(shardprop::load_safetensors(again, dir / "a.safetensors"));
  CHECK_NOTHROW(shardprop::load_training_state(resumed, again, dir / "b.safetensors"));
}

TEST_CASE("A file with no checksum in its metadata, as PyTorch writes them, still loads",
          "[checkpoint]") {
  TempDir dir;
  Model model = initial_model(true);
  Trainer trainer(model, settings_for(Optimizer::sgd, 0.9f));
  train(trainer, 1);
  const auto path = dir / "from_torch.safetensors";
  const bool with_optimizer_state = GENERATE(false, true);
  CAPTURE(with_optimizer_state);
  if (with_optimizer_state) {
    shardprop::save_checkpoint(model, trainer, path);
  } else {
    shardprop::save_safetensors(model, path);
  }
  SafetensorsFile contents = read_safetensors(path);
  REQUIRE(contents.header["__metadata__"].contains("shardprop.checksum"));
  contents.header["__metadata__"].erase("shardprop.checksum");
  write_safetensors(path, contents);
  REQUIRE_FALSE(shardprop::read_safetensors_metadata(path).contains("shardprop.checksum"));

  Model loaded(spec_for(true));
  shardprop::load_safetensors(loaded, path);
  CHECK(same_bits(loaded.parameters(), model.parameters()));
  CHECK(same_counters(loaded, model));
}
