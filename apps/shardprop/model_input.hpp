// What evaluate and predict share: reading a CSV the way a trained model needs it (its feature
// columns by header name, or the first N columns without a header) and the --delimiter rule.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/trained_model.hpp"

namespace shardprop::cli {

// One character, or "tab". Throws Error otherwise.
char parse_delimiter(const std::string& text);

// --na-values LIST: the texts between commas, as they are; an empty item is the empty field
// (so "" alone is the empty field only), and "none" is no text at all.
std::vector<std::string> parse_na_values(const std::string& list);

// The feature columns for `model`: its recorded feature names with a header; positions 0..N-1
// without a header, or when the file records no names.
std::vector<std::string> feature_columns(const TrainedModel& model, bool header);

// A stream over `data` that yields the model's features, with missing values filled in and
// standardized as in training, in blocks of bounded size. `csv` says the delimiter, header,
// targets and na_values; its feature list and missing-value policy are filled in here (the
// model's; prediction input, which cannot leave rows out, reads a drop model's missing cells
// as errors). For xent the target is read as the model's class labels.
std::unique_ptr<CsvStream> open_model_input(const TrainedModel& model, const std::string& data,
                                            CsvOptions csv);

}  // namespace shardprop::cli
