// RunMetadata to metadata entries and back. The names, classes and standardization are read
// (and checked against the model) by load_trained_model; this file reads the run's own keys.
#include "shardprop/run_metadata.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "shardprop/error.hpp"

namespace shardprop {
namespace {

using nlohmann::json;

constexpr const char* kDataKey = "shardprop.data";
constexpr const char* kDataFilesKey = "shardprop.data_files";
constexpr const char* kSettingsKey = "shardprop.train_options";
constexpr const char* kSeedKey = "shardprop.seed";
constexpr const char* kEpochsKey = "shardprop.epochs";
constexpr const char* kRunKey = "shardprop.run";
constexpr const char* kPositionKey = "shardprop.epoch_position";

// A float as the double nearest to its shortest decimal, so the JSON shows "0.1" rather than
// the float's exact value 0.10000000149011612, and reads back as the same float.
double json_float(float value) {
  if (!std::isfinite(value)) return value;
  char text[32];
  const std::to_chars_result written = std::to_chars(text, text + sizeof text, value);
  double shortest = 0.0;
  const std::from_chars_result read = std::from_chars(text, written.ptr, shortest);
  if (read.ec != std::errc() || static_cast<float>(shortest) != value) return value;
  return shortest;
}

json json_floats(const std::vector<float>& values) {
  json array = json::array();
  for (const float v : values) array.push_back(json_float(v));
  return array;
}

// JSON text of what the caller gave (file and column names): JSON holds only UTF-8 text, and
// other bytes are the input's fault, not a bug.
std::string json_text(const json& value, const std::string& what) {
  try {
    return value.dump();
  } catch (const json::exception&) {
    throw Error(what + " is not valid UTF-8 text; checkpoints store it as JSON");
  }
}

json number_or_null(double value) { return std::isfinite(value) ? json(value) : json(nullptr); }

json to_json(const RunState& s) {
  return {{"restart", s.restart},
          {"weights_restart", s.weights_restart},
          {"restarts_done", s.restarts_done},
          {"best_restart", s.best_restart},
          {"best_restart_loss", number_or_null(s.best_restart_loss)},
          {"best_loss", number_or_null(s.best_loss)},
          {"best_epoch", s.best_epoch},
          {"bad_epochs", s.bad_epochs}};
}

// JSON numbers keep a double's bits: written with 17 significant digits, read back exactly.
json to_json(const EpochPosition& p) {
  return {{"step", p.step}, {"rows", p.rows}, {"sums", p.sums}};
}

// Errors about one metadata entry: "FILE: metadata 'KEY': what".
struct Entry {
  const std::string& file;
  const char* key;
  const std::string* text;  // nullptr: missing

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(file + ": metadata '" + key + "': " + what);
  }
  const std::string& required() const {
    if (text == nullptr) {
      throw Error(file + ": no '" + key + "' metadata: not a checkpoint of a training run");
    }
    return *text;
  }
  json parse() const {
    json value = json::parse(required(), nullptr, false);
    if (value.is_discarded()) fail("not valid JSON");
    return value;
  }
  // A decimal count with nothing else (from_chars: no sign, no spaces, no trailing junk).
  template <class Integer>
  Integer count() const {
    const std::string& digits = required();
    Integer value = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error != std::errc() || end != digits.data() + digits.size() || value < 0) {
      fail("not a count: '" + digits + "'");
    }
    return value;
  }
};

int integer_member(const Entry& e, const json& object, const char* member) {
  if (!object.contains(member) || !object[member].is_number_integer()) {
    e.fail(std::string("'") + member + "' is missing or not an integer");
  }
  const auto value = object[member].get<std::int64_t>();
  if (value < -1 || value > std::numeric_limits<int>::max()) {
    e.fail(std::string("'") + member + "' is out of range");
  }
  return static_cast<int>(value);
}

// A loss: a number, or null (or absent) for "none yet".
double loss_member(const Entry& e, const json& object, const char* member) {
  const json value = object.value(member, json());
  if (value.is_null()) return std::numeric_limits<double>::infinity();
  if (!value.is_number()) e.fail(std::string("'") + member + "' is not a number");
  return value.get<double>();
}

RunState run_state_from(const Entry& e) {
  const json j = e.parse();
  if (!j.is_object() || !j.contains("restarts_done") || !j["restarts_done"].is_boolean()) {
    e.fail("malformed (expected an object with restart, restarts_done, best_restart, ...)");
  }
  RunState s;
  s.restart = integer_member(e, j, "restart");
  s.weights_restart = integer_member(e, j, "weights_restart");
  s.restarts_done = j["restarts_done"].get<bool>();
  s.best_restart = integer_member(e, j, "best_restart");
  s.best_restart_loss = loss_member(e, j, "best_restart_loss");
  s.best_loss = loss_member(e, j, "best_loss");
  s.best_epoch = integer_member(e, j, "best_epoch");
  s.bad_epochs = integer_member(e, j, "bad_epochs");
  if (s.restart < 0 || s.weights_restart < 0 || s.best_epoch < 0 || s.bad_epochs < 0) {
    e.fail("a counter is negative");
  }
  return s;
}

EpochPosition position_from(const Entry& e) {
  const json j = e.parse();
  auto count = [&](const char* member) {
    if (!j.is_object() || !j.contains(member) || !j[member].is_number_integer() ||
        j[member].get<std::int64_t>() < 0) {
      e.fail(std::string("'") + member + "' is missing or not a count");
    }
    return j[member].get<std::int64_t>();
  };
  EpochPosition p;
  p.step = count("step");
  p.rows = count("rows");
  const json sums = j.value("sums", json());
  if (!sums.is_array() || sums.size() != p.sums.size()) {
    e.fail("'sums' is missing or not " + std::to_string(p.sums.size()) + " numbers");
  }
  for (std::size_t i = 0; i < p.sums.size(); ++i) {
    if (!sums[i].is_number()) e.fail("'sums' holds something that is not a number");
    p.sums[i] = sums[i].get<double>();
  }
  return p;
}

// kCategoricalKey's JSON: [{"column", "categories", "counts"}...].
std::string categorical_text(const std::vector<CategoricalColumn>& columns,
                             const std::string& data) {
  json array = json::array();
  for (const CategoricalColumn& c : columns) {
    array.push_back({{"column", c.column}, {"categories", c.categories}, {"counts", c.counts}});
  }
  return json_text(array, data + ": a categorical column name or category");
}

}  // namespace

std::map<std::string, std::string> run_metadata_entries(const RunMetadata& m) {
  const std::string data = m.data_name.empty() ? std::string("the training data") : m.data_name;
  std::map<std::string, std::string> entries;
  entries[kDataKey] = m.data_name;  // the name itself, not JSON
  if (m.has_data_paths || !m.data_path.empty()) {
    entries[kDataFilesKey] =
        json_text(json{{"data", m.data_path}, {"val", m.validation_path}}, "a data file name");
  }
  if (!m.feature_names.empty()) {
    entries[kFeaturesKey] = json_text(m.feature_names, data + ": a feature column name");
  }
  if (!m.target_names.empty()) {
    entries[kTargetsKey] = json_text(m.target_names, data + ": a target column name");
  }
  if (!m.class_names.empty()) {
    entries[kClassesKey] = json_text(m.class_names, data + ": a class name");
  }
  if (!m.standardization.empty()) {
    entries[kStandardizationKey] = json{{"mean", json_floats(m.standardization.mean)},
                                        {"scale", json_floats(m.standardization.scale)}}
                                       .dump();
  }
  if (m.imputation.policy != MissingPolicy::error || !m.imputation.fill.empty() ||
      m.na_values != CsvOptions{}.na_values) {
    entries[kImputationKey] =
        json_text(json{{"policy", std::string(to_string(m.imputation.policy))},
                       {"na_values", m.na_values},
                       {"fill", json_floats(m.imputation.fill)}},
                  "a missing-value token");
  }
  if (!m.categorical.empty()) entries[kCategoricalKey] = categorical_text(m.categorical, data);
  const json settings = json::parse(m.settings, nullptr, false);
  if (!settings.is_object()) throw Error("run settings are not a JSON object: " + m.settings);
  entries[kSettingsKey] = json_text(settings, "a file name among the options");
  entries[kEpochsKey] = std::to_string(m.epochs);
  entries[kSeedKey] = std::to_string(m.seed);
  entries[kRunKey] = to_json(m.run).dump();
  if (m.position.step > 0) {
    for (const double sum : m.position.sums) {
      if (!std::isfinite(sum)) throw Error("an epoch's running metrics are not finite");
    }
    entries[kPositionKey] = to_json(m.position).dump();
  }
  return entries;
}

RunMetadata read_run_metadata(const TrainedModel& trained, const std::string& file) {
  auto entry = [&](const char* key) {
    const auto found = trained.metadata.find(key);
    return Entry{file, key, found == trained.metadata.end() ? nullptr : &found->second};
  };
  RunMetadata m;
  // The settings first: a weights file without them is not the checkpoint of a run at all.
  const Entry settings = entry(kSettingsKey);
  if (!settings.parse().is_object()) settings.fail("malformed (expected a JSON object)");
  m.settings = settings.required();
  m.run = run_state_from(entry(kRunKey));
  m.epochs = entry(kEpochsKey).count<int>();
  if (const Entry seed = entry(kSeedKey); seed.text != nullptr) {
    m.seed = seed.count<std::uint64_t>();
  }
  if (const Entry position = entry(kPositionKey); position.text != nullptr) {
    m.position = position_from(position);
  }
  if (const Entry data = entry(kDataKey); data.text != nullptr) m.data_name = *data.text;
  if (const Entry files = entry(kDataFilesKey); files.text != nullptr) {
    const json j = files.parse();
    if (!j.is_object()) files.fail("malformed (expected {\"data\": PATH, \"val\": PATH})");
    for (const auto& [member, path] :
         {std::pair{"data", &m.data_path}, std::pair{"val", &m.validation_path}}) {
      if (!j.contains(member)) continue;
      if (!j[member].is_string()) files.fail(std::string("'") + member + "' is not a path");
      *path = j[member].get<std::string>();
    }
    m.has_data_paths = true;
  }
  m.feature_names = trained.feature_names;
  m.target_names = trained.target_names;
  if (trained.metadata.contains(kClassesKey)) m.class_names = trained.class_names;
  m.standardization = trained.standardization;
  m.imputation = trained.imputation;
  m.na_values = trained.na_values;
  m.categorical = trained.categorical;
  return m;
}

}  // namespace shardprop
