// load_trained_model: the model from load_model, then each metadata key parsed and checked
// against the model's shape. Unknown keys are kept, never rejected.
#include "shardprop/trained_model.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>

#include "io/safetensors_file.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

using nlohmann::json;

// Errors about one metadata entry: "FILE: metadata 'KEY': what".
struct MetadataEntry {
  const std::string& file;
  const char* key;
  const std::string& text;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(file + ": metadata '" + std::string(key) + "': " + what);
  }

  json parse() const {
    json value = json::parse(text, nullptr, false);
    if (value.is_discarded()) fail("not valid JSON");
    return value;
  }

  // `rule` says why `expected` names, for the message.
  std::vector<std::string> names(std::size_t expected, const std::string& rule) const {
    const json value = parse();
    if (!value.is_array()) fail("expected a JSON array of strings");
    std::vector<std::string> names;
    for (const json& name : value) {
      if (!name.is_string()) fail("expected a JSON array of strings, found " + name.dump());
      names.push_back(name.get<std::string>());
    }
    if (names.size() != expected) {
      fail(std::to_string(names.size()) + " names, expected " + std::to_string(expected) + " (" +
           rule + ")");
    }
    return names;
  }

  void check_distinct(const std::vector<std::string>& names) const {
    std::set<std::string> seen;
    for (const std::string& name : names) {
      if (!seen.insert(name).second) fail("the name '" + name + "' appears twice");
    }
  }

  std::vector<float> numbers(const json& object, const char* member, std::size_t expected) const {
    const std::string where = std::string("'") + member + "'";
    if (!object.contains(member) || !object[member].is_array()) {
      fail("expected an array " + where);
    }
    std::vector<float> values;
    for (const json& value : object[member]) {
      if (!value.is_number()) fail(where + " holds " + value.dump() + ", not a number");
      values.push_back(value.get<float>());
      if (!std::isfinite(values.back())) fail(where + " holds a value that is not finite");
    }
    if (values.size() != expected) {
      fail(where + " has " + std::to_string(values.size()) + " values, the model has " +
           std::to_string(expected) + " inputs");
    }
    return values;
  }
};

// "shardprop.imputation": {"policy": ..., "na_values": [...], "fill": [...]}.
void read_imputation(const MetadataEntry& e, std::size_t inputs, TrainedModel& trained) {
  const json value = e.parse();
  if (!value.is_object() || !value.contains("policy") || !value["policy"].is_string()) {
    e.fail("expected a JSON object {\"policy\": ..., \"na_values\": [...], \"fill\": [...]}");
  }
  try {
    trained.imputation.policy = parse_missing_policy(value["policy"].get<std::string>());
  } catch (const Error& error) {
    e.fail(error.what());
  }
  if (!value.contains("na_values") || !value["na_values"].is_array()) {
    e.fail("expected an array 'na_values'");
  }
  trained.na_values.clear();
  for (const json& token : value["na_values"]) {
    if (!token.is_string()) e.fail("'na_values' holds " + token.dump() + ", not a string");
    trained.na_values.push_back(token.get<std::string>());
  }
  const MissingPolicy policy = trained.imputation.policy;
  const bool fills = policy == MissingPolicy::mean || policy == MissingPolicy::median ||
                     policy == MissingPolicy::zero;
  if (!fills && value.contains("fill") && value["fill"].is_array() && !value["fill"].empty()) {
    e.fail("'fill' holds values, but the policy " + std::string(to_string(policy)) +
           " fills nothing in");
  }
  trained.imputation.fill = e.numbers(value, "fill", fills ? inputs : 0);
}

// kCategoricalKey: each column's inputs must be the consecutive feature names
// "COLUMN=CATEGORY", in order, with categories distinct and sorted by bytes.
std::vector<CategoricalColumn> categorical_columns(const MetadataEntry& e,
                                                   const std::vector<std::string>& feature_names,
                                                   std::size_t inputs) {
  const json value = e.parse();
  if (!value.is_array()) {
    e.fail("expected a JSON array of {\"column\", \"categories\", \"counts\"} objects");
  }
  if (feature_names.empty()) {
    e.fail("categorical columns need the feature names ('" + std::string(kFeaturesKey) + "')");
  }
  std::vector<CategoricalColumn> columns;
  std::size_t next = 0;  // feature name searched from
  for (const json& item : value) {
    if (!item.is_object() || !item.contains("column") || !item["column"].is_string() ||
        !item.contains("categories") || !item["categories"].is_array() ||
        !item.contains("counts") || !item["counts"].is_array()) {
      e.fail("expected {\"column\": NAME, \"categories\": [...], \"counts\": [...]}, found " +
             item.dump());
    }
    CategoricalColumn column;
    column.column = item["column"].get<std::string>();
    for (const json& category : item["categories"]) {
      if (!category.is_string()) e.fail("a category of '" + column.column + "' is not a string");
      column.categories.push_back(category.get<std::string>());
    }
    for (const json& count : item["counts"]) {
      if (!count.is_number_integer() || count.get<std::int64_t>() < 0) {
        e.fail("a count of '" + column.column + "' is not a count");
      }
      column.counts.push_back(count.get<std::int64_t>());
    }
    if (column.counts.size() != column.categories.size()) {
      e.fail("'" + column.column + "' has " + std::to_string(column.categories.size()) +
             " categories and " + std::to_string(column.counts.size()) + " counts");
    }
    for (std::size_t i = 1; i < column.categories.size(); ++i) {
      if (!(column.categories[i - 1] < column.categories[i])) {
        e.fail("the categories of '" + column.column + "' are not distinct and sorted by bytes");
      }
    }
    if (column.categories.empty()) continue;  // a column with no inputs
    const std::string first = column.column + "=" + column.categories.front();
    const auto at = std::find(feature_names.begin() + static_cast<std::ptrdiff_t>(next),
                              feature_names.end(), first);
    const auto start = static_cast<std::size_t>(at - feature_names.begin());
    if (at == feature_names.end() || start + column.categories.size() > inputs) {
      e.fail("the inputs of '" + column.column + "' ('" + first +
             "', ...) are not among the feature names, in input order");
    }
    for (std::size_t i = 0; i < column.categories.size(); ++i) {
      if (feature_names[start + i] != column.column + "=" + column.categories[i]) {
        e.fail("input " + std::to_string(start + i) + " is '" + feature_names[start + i] +
               "', expected '" + column.column + "=" + column.categories[i] + "'");
      }
    }
    next = start + column.categories.size();
    columns.push_back(std::move(column));
  }
  return columns;
}

}  // namespace

TrainedModel load_trained_model(const std::filesystem::path& path) {
  return detail::load_trained_model(detail::SafetensorsFile::read(path));
}

TrainedModel detail::load_trained_model(const SafetensorsFile& parsed) {
  const std::string& file = parsed.name();
  TrainedModel trained{load_model(parsed), {}, {}, {}, {}, {}, CsvOptions{}.na_values,
                       parsed.metadata(),  {}};
  const Model& model = trained.model;
  const auto inputs = static_cast<std::size_t>(model.inputs());
  const auto outputs = static_cast<std::size_t>(model.outputs());
  const bool classifier = model.spec().loss == Loss::xent;
  auto entry = [&](const std::string& key) -> const std::string* {
    const auto found = trained.metadata.find(key);
    return found == trained.metadata.end() ? nullptr : &found->second;
  };

  if (const std::string* text = entry(kFeaturesKey)) {
    const MetadataEntry e{file, kFeaturesKey, *text};
    trained.feature_names = e.names(inputs, "one per model input");
    e.check_distinct(trained.feature_names);
  }
  if (const std::string* text = entry(kTargetsKey)) {
    const MetadataEntry e{file, kTargetsKey, *text};
    trained.target_names = classifier ? e.names(1, "a classifier has one label column")
                                      : e.names(outputs, "one per model output");
  }
  if (const std::string* text = entry(kClassesKey)) {
    const MetadataEntry e{file, kClassesKey, *text};
    if (!classifier) {
      e.fail("class names for a model with the " + std::string(to_string(model.spec().loss)) +
             " loss, which has no classes");
    }
    trained.class_names = e.names(outputs, "one per model output");
    e.check_distinct(trained.class_names);
  } else if (classifier) {
    for (std::size_t k = 0; k < outputs; ++k) trained.class_names.push_back(std::to_string(k));
  }
  if (const std::string* text = entry(kStandardizationKey)) {
    const MetadataEntry e{file, kStandardizationKey, *text};
    const json value = e.parse();
    if (!value.is_object()) e.fail("expected a JSON object {\"mean\": [...], \"scale\": [...]}");
    trained.standardization.mean = e.numbers(value, "mean", inputs);
    trained.standardization.scale = e.numbers(value, "scale", inputs);
    const auto& scale = trained.standardization.scale;
    if (std::any_of(scale.begin(), scale.end(), [](float s) { return !(s > 0.0f); })) {
      e.fail("'scale' holds a value that is not positive");
    }
  }
  if (const std::string* text = entry(kImputationKey)) {
    read_imputation(MetadataEntry{file, kImputationKey, *text}, inputs, trained);
  }
  if (const std::string* text = entry(kCategoricalKey)) {
    trained.categorical = categorical_columns(MetadataEntry{file, kCategoricalKey, *text},
                                              trained.feature_names, inputs);
  }
  return trained;
}

std::vector<std::string> source_columns(const TrainedModel& model, bool header) {
  std::vector<std::string> columns;
  if (!header || model.feature_names.empty()) {
    for (int c = 0; c < model.model.inputs(); ++c) columns.push_back(std::to_string(c));
    return columns;
  }
  const std::vector<std::string>& names = model.feature_names;
  std::size_t next = 0;
  for (std::size_t i = 0; i < names.size();) {
    if (next < model.categorical.size() &&
        names[i] == model.categorical[next].column + "=" +
                        (model.categorical[next].categories.empty()
                             ? std::string()
                             : model.categorical[next].categories.front())) {
      columns.push_back(model.categorical[next].column);
      i += model.categorical[next].categories.size();
      ++next;
      continue;
    }
    columns.push_back(names[i++]);
  }
  return columns;
}

void read_options_for(const TrainedModel& model, CsvOptions& csv) {
  csv.categorical.clear();
  csv.categories.clear();
  if (!csv.header && !model.categorical.empty()) {
    throw Error(
        "the model one-hot encodes categorical columns, found by header name: its input "
        "needs a header line");
  }
  // Without names the model's inputs are the file's first columns, all numeric.
  csv.features = source_columns(model, csv.header);
  if (!csv.header || model.feature_names.empty()) return;
  for (const CategoricalColumn& column : model.categorical) {
    csv.categorical.push_back(column.column);
    csv.categories.push_back(column);
  }
}

}  // namespace shardprop
