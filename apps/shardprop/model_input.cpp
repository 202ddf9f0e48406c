// Reading CSV input for a trained model, shared by `shardprop evaluate` and `shardprop predict`.
#include "model_input.hpp"

#include <utility>

#include "shardprop/error.hpp"

namespace shardprop::cli {

char parse_delimiter(const std::string& text) {
  if (text == "tab" || text == "\\t") return '\t';
  if (text.size() != 1 || text == "\"" || text == "\n" || text == "\r") {
    throw Error("--delimiter must be one character other than a quote or a line break, got '" +
                text + "'");
  }
  return text.front();
}

std::vector<std::string> parse_na_values(const std::string& list) {
  if (list == "none") return {};
  std::vector<std::string> tokens;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t comma = list.find(',', begin);
    tokens.push_back(list.substr(begin, comma - begin));
    if (comma == std::string::npos) return tokens;
    begin = comma + 1;
  }
}

std::vector<std::string> feature_columns(const TrainedModel& model, bool header) {
  if (header && !model.feature_names.empty()) return model.feature_names;
  std::vector<std::string> positions;
  for (int c = 0; c < model.model.inputs(); ++c) positions.push_back(std::to_string(c));
  return positions;
}

std::unique_ptr<CsvStream> open_model_input(const TrainedModel& model, const std::string& data,
                                            CsvOptions csv) {
  csv.features = feature_columns(model, csv.header);
  const bool labels = model.model.spec().loss == Loss::xent && !csv.no_target;
  csv.target_kind = labels ? TargetKind::classes : TargetKind::numeric;
  csv.missing = model.imputation.policy;
  if (csv.no_target && csv.missing == MissingPolicy::drop) csv.missing = MissingPolicy::error;
  auto stream = std::make_unique<CsvStream>(
      data, csv, labels ? model.class_names : std::vector<std::string>{});
  stream->set_imputation(model.imputation);
  if (!model.standardization.empty()) stream->set_standardization(model.standardization);
  return stream;
}

}  // namespace shardprop::cli
