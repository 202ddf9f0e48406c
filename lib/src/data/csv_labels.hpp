// Class labels read from a CSV column: the distinct texts in sorted order and each row's class
// index. Leaves out finding the labels in the file (the record parser records where they are).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "data/csv_parser.hpp"

namespace shardprop::detail {

// Labels are exact texts: a field's surrounding blanks and quotes are removed and "" becomes ",
// nothing else, so "1" and "1.0" are two classes. They sort by value when every label is a
// finite number ("2" before "10"; equal values by bytes), by bytes otherwise. Writes row r's
// class index to targets[r · target_stride] (labels[r] counts from `text`) and returns the
// names in class order. Runs in the caller's task_arena; the result does not depend on it.
std::vector<std::string> assign_class_indices(const char* text, std::span<const LabelText> labels,
                                              float* targets, std::size_t target_stride);

// Sorts label names into class order, as assign_class_indices orders them, and drops repeats:
// so the union of the names of several parts of a file, sorted, is the whole file's class order.
void sort_class_labels(std::vector<std::string>& names);

}  // namespace shardprop::detail
