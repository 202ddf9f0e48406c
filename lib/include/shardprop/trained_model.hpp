// What a weights file written by `shardprop train` says beyond its tensors: the feature and
// target columns, the class names and the feature standardization, read and checked in one
// place so that callers need not parse metadata themselves. Leaves out writing (RunMetadata in
// run_metadata.hpp writes these keys) and the tensors' own format (checkpoint.hpp).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"

namespace shardprop {

// Metadata keys (string values holding JSON) that describe how the model was trained: arrays of
// names, and {"mean": [...], "scale": [...]} for the standardization.
inline constexpr const char* kFeaturesKey = "shardprop.features";
inline constexpr const char* kTargetsKey = "shardprop.targets";
inline constexpr const char* kClassesKey = "shardprop.classes";
inline constexpr const char* kStandardizationKey = "shardprop.standardization";
// {"policy": "error"|"mean"|"median"|"zero"|"drop", "na_values": [texts], "fill": [one per
// input for mean, median and zero; [] otherwise]}: how missing cells were read and filled in.
inline constexpr const char* kImputationKey = "shardprop.imputation";
// [{"column": NAME, "categories": [...], "counts": [...]}, ...]: the categorical columns in
// input order, each one-hot encoded as the inputs "NAME=CATEGORY" (absent: none).
inline constexpr const char* kCategoricalKey = "shardprop.categorical";

struct TrainedModel {
  Model model;
  // The CSV columns the model reads, in input order (empty when the file does not say).
  std::vector<std::string> feature_names;
  // The target columns: one for xent (the class label column), outputs() otherwise (empty when
  // the file does not say).
  std::vector<std::string> target_names;
  // xent: class index i is class_names[i], one per output. The file's list, or "0", "1", ...
  // when it has none. Empty for mse and bce.
  std::vector<std::string> class_names;
  // Apply to raw features before Model::predict; empty when the model was trained on raw ones.
  Standardization standardization;
  // Missing feature values: fill them in (before the standardization) as in training. Without
  // the key: policy error and CsvOptions' default na_values.
  Imputation imputation;
  // The texts read as missing values (CsvOptions::na_values) in training.
  std::vector<std::string> na_values = CsvOptions{}.na_values;
  // Every string metadata entry of the file, including keys this library does not know.
  std::map<std::string, std::string> metadata;
  // The categorical columns' vocabularies, in input order: column c's inputs are the
  // feature_names "c.column=CATEGORY", one per category, consecutive (empty: none).
  std::vector<CategoricalColumn> categorical = {};
};

// load_model(path) plus the metadata above, validated: each key that is present must be valid
// JSON of the documented shape, feature names as many as the model's inputs and distinct, target
// names 1 (xent) or outputs() many, class names (xent only) one per output and distinct, and a
// standardization with one finite mean and one finite positive scale per input, an
// imputation with a known policy, texts for na_values and one finite fill per input (none for
// error and drop), and categorical columns whose inputs "COLUMN=CATEGORY" are consecutive
// feature names, in vocabulary order. Throws Error naming the file and the key (or, from
// load_model, the tensor).
TrainedModel load_trained_model(const std::filesystem::path& path);

// The CSV columns a trained model reads, in the order to read them: its feature names with each
// categorical column's inputs collapsed back to the column's name (positions "0", "1", ...
// without names). With `header` false, the positions of the model's inputs.
std::vector<std::string> source_columns(const TrainedModel& model, bool header);

// Fills csv's features, categorical and categories so that read_csv, read_csv_part or CsvStream
// read a file's columns as `model`'s inputs, one-hot encoding its categorical columns with the
// stored vocabularies (a category not among them: all zeros). The other options are kept.
void read_options_for(const TrainedModel& model, CsvOptions& csv);

}  // namespace shardprop
