// assign_class_indices: distinct labels per block of rows in parallel, merged and sorted once,
// then a parallel lookup per row.
#include "data/csv_labels.hpp"

#include <fast_float/fast_float.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

namespace shardprop::detail {
namespace {

constexpr std::size_t kRowsPerTask = std::size_t{1} << 15;

struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

using TextSet = std::unordered_set<std::string, TextHash, std::equal_to<>>;

// The label's text; an escaped one is unescaped into scratch.
std::string_view label_text(const char* text, const LabelText& label, std::string& scratch) {
  const char* begin = text + label.offset;
  if (!label.escaped()) return {begin, static_cast<std::size_t>(label.size())};
  scratch = unescape_quotes(begin, begin + label.size());
  return scratch;
}

// The same numbers as the reader accepts (a leading '+' included), in double for ordering.
bool finite_number(const std::string& name, double& value) {
  const char* first = name.data();
  const char* last = first + name.size();
  if (last - first >= 2 && *first == '+' && first[1] != '-' && first[1] != '+') ++first;
  const auto result = fast_float::from_chars(first, last, value);
  return result.ec == std::errc() && result.ptr == last && std::isfinite(value);
}

}  // namespace

void sort_class_labels(std::vector<std::string>& names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<double> values(names.size());
  bool numeric = true;
  for (std::size_t i = 0; i < names.size() && numeric; ++i) {
    numeric = finite_number(names[i], values[i]);
  }
  if (!numeric) return;
  std::vector<std::size_t> order(names.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  // Byte order breaks ties between equal values ("1" and "1.0"); names are already in it.
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });
  std::vector<std::string> sorted;
  sorted.reserve(names.size());
  for (const std::size_t i : order) sorted.push_back(std::move(names[i]));
  names = std::move(sorted);
}

std::vector<std::string> assign_class_indices(const char* text, std::span<const LabelText> labels,
                                              float* targets, std::size_t target_stride) {
  const std::size_t rows = labels.size();
  const std::size_t tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
  auto task_rows = [&](std::size_t task) {
    return std::pair{task * kRowsPerTask, std::min(rows, (task + 1) * kRowsPerTask)};
  };

  std::vector<std::vector<std::string>> distinct(tasks);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, tasks, 1),
                    [&](const tbb::blocked_range<std::size_t>& range) {
                      std::string scratch;
                      for (std::size_t task = range.begin(); task != range.end(); ++task) {
                        TextSet seen;
                        const auto [first, last] = task_rows(task);
                        for (std::size_t row = first; row < last; ++row) {
                          const std::string_view label = label_text(text, labels[row], scratch);
                          if (seen.find(label) == seen.end()) seen.emplace(label);
                        }
                        distinct[task].assign(seen.begin(), seen.end());
                      }
                    });
  TextSet all;
  for (std::vector<std::string>& names : distinct) {
    for (std::string& name : names) all.insert(std::move(name));
  }
  std::vector<std::string> names(all.begin(), all.end());
  sort_class_labels(names);

  std::unordered_map<std::string_view, float, TextHash, std::equal_to<>> index;
  for (std::size_t i = 0; i < names.size(); ++i) index.emplace(names[i], static_cast<float>(i));
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, tasks, 1),
                    [&](const tbb::blocked_range<std::size_t>& range) {
                      std::string scratch;
                      for (std::size_t task = range.begin(); task != range.end(); ++task) {
                        const auto [first, last] = task_rows(task);
                        for (std::size_t row = first; row < last; ++row) {
                          const std::string_view label = label_text(text, labels[row], scratch);
                          targets[row * target_stride] = index.find(label)->second;
                        }
                      }
                    });
  return names;
}

}  // namespace shardprop::detail
