// The second half of read_csv, which a read of one part of a file shares: parsing records in
// parallel into a dataset's rows and mapping class labels. Leaves out finding the records and
// planning the columns (csv_format.hpp).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "data/csv_format.hpp"
#include "data/csv_parser.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// Parses `records` (complete records inside text, starting at a record start) into data's rows
// and, for a label target, data.class_names (this text's labels in class order) and the class
// indices. REQUIRES: data holds the names, feature count and target width that
// plan_columns(names, options, ...) gave along with `layout`. Throws Error with the first fault
// in file order, as `report` words it.
void read_csv_rows(const std::string& file, const CsvLayout& layout,
                   const std::vector<std::string>& names, const CsvOptions& options,
                   const CsvText& text, std::string_view records, const FaultReport& report,
                   Dataset& data);

}  // namespace shardprop::detail
