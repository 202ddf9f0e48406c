// choose_loss: a peek at the target through a CsvStream of one small block.
#include "shardprop/loss_choice.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "shardprop/data_stream.hpp"
#include "shardprop/error.hpp"

namespace shardprop {

LossChoice choose_loss(const std::filesystem::path& path, const CsvOptions& options) {
  LossChoice choice;
  if (options.targets.size() > 1) {
    choice.reason = "several target columns";
    return choice;
  }
  CsvOptions csv = options;
  csv.ignore.insert(csv.ignore.end(), csv.categorical.begin(), csv.categorical.end());
  csv.categorical.clear();
  csv.categories.clear();
  csv.target_kind = TargetKind::numeric;
  Dataset first;
  try {
    CsvStream peek(path, csv, {}, kLossChoiceBytes);
    if (!peek.next(first)) {
      choice.reason = "no data rows";
      choice.no_data_rows = true;
      return choice;
    }
  } catch (const Error& e) {
    // A field that is not a number is taken for a label; if it was a feature after all, reading
    // the file for training reports it with its place.
    if (std::string(e.what()).find("is not a number") == std::string::npos) throw;
    choice.loss = Loss::xent;
    choice.reason = "the target holds labels";
    return choice;
  }
  std::vector<float> values(first.targets.begin(), first.targets.end());
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  const bool integers =
      std::all_of(values.begin(), values.end(), [](float v) { return v == std::floor(v); });
  if (integers && values.size() >= 2 && values.size() <= kMaxAutoClasses) {
    choice.loss = Loss::xent;
    choice.reason = "the target holds " + std::to_string(values.size()) + " integer values";
    return choice;
  }
  choice.reason = "the target holds numbers";
  return choice;
}

}  // namespace shardprop
