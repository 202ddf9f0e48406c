// Reading CSV input for a trained model, shared by `shardprop evaluate` and `shardprop predict`.
#include "model_input.hpp"

#include <cstdio>
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

std::unique_ptr<CsvStream> open_model_input(const TrainedModel& model, const std::string& data,
                                            CsvOptions csv) {
  read_options_for(model, csv);
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

UnseenCategoryCount::UnseenCategoryCount(DataStream& source) : source_(source) {}

void UnseenCategoryCount::rewind() {
  source_.rewind();
  rows_ = 0;
}

bool UnseenCategoryCount::next(Dataset& chunk) {
  if (!source_.next(chunk)) return false;
  rows_ += chunk.unseen_category_rows;
  return true;
}

void UnseenCategoryCount::report(const std::string& data) const {
  if (rows_ == 0) return;
  std::fprintf(stderr,
               "shardprop: note: %s: %lld rows had a category not seen in training (their "
               "inputs for that column are all zero)\n",
               data.c_str(), static_cast<long long>(rows_));
}

}  // namespace shardprop::cli
