// What evaluate and predict share: reading a CSV the way a trained model needs it (its feature
// columns by header name, or the first N columns without a header) and the --delimiter rule.
#pragma once

#include <cstdint>
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

// A stream over `data` that yields the model's features, with missing values filled in and
// standardized as in training, in blocks of bounded size. `csv` says the delimiter, header,
// targets and na_values; its feature columns and categories (read_options_for) and its
// missing-value policy are filled in here (the model's; prediction input, which cannot leave
// rows out, reads a drop model's missing cells as errors). For xent the target is read as
// the model's class labels.
std::unique_ptr<CsvStream> open_model_input(const TrainedModel& model, const std::string& data,
                                            CsvOptions csv);

// Passes a stream's chunks through, counting the rows that held a category not seen in
// training (Dataset::unseen_category_rows), which evaluate and predict report.
class UnseenCategoryCount final : public DataStream {
 public:
  explicit UnseenCategoryCount(DataStream& source);
  void rewind() override;
  bool next(Dataset& chunk) override;
  // Prints "N rows had a category not seen in training" to stderr, when N > 0.
  void report(const std::string& data) const;
  std::int64_t rows() const { return rows_; }

 private:
  DataStream& source_;
  std::int64_t rows_ = 0;
};

}  // namespace shardprop::cli
