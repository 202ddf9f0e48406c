// Categorical columns: per block of rows in parallel, a hash table (TextIndex) from each text to
// its count (counting) or to its input (encoding); the blocks' counts merge in block order, so
// the vocabularies do not depend on the scheduling.
#include "data/csv_categorical.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "data/text_index.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

constexpr std::int64_t kRowsPerTask = std::int64_t{1} << 14;

struct TextHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

using TextSet = std::unordered_set<std::string, TextHash, std::equal_to<>>;

std::int64_t task_count(std::int64_t rows) { return (rows + kRowsPerTask - 1) / kRowsPerTask; }

// A cell's text; an escaped one is unescaped into scratch.
std::string_view cell_text(const char* text, const LabelText& cell, std::string& scratch) {
  const char* begin = text + cell.offset;
  if (!cell.escaped()) return {begin, static_cast<std::size_t>(cell.size())};
  scratch = unescape_quotes(begin, begin + cell.size());
  return scratch;
}

TextSet missing_texts(const CsvOptions& options) {
  return TextSet(options.na_values.begin(), options.na_values.end());
}

// One task's distinct texts of one column, in the order met, with their counts. The texts are
// views of the CSV text, or of `unescaped` for quoted texts with "" pairs.
struct ColumnTally {
  TextIndex index;
  std::vector<std::string_view> texts;
  std::vector<std::int64_t> counts;
  std::deque<std::string> unescaped;

  void add(const char* text, const LabelText& cell, std::string& scratch) {
    std::string_view view = cell_text(text, cell, scratch);
    auto next = static_cast<std::int32_t>(texts.size());
    if (cell.escaped()) {
      const std::int32_t found = index.find(view);
      if (found != TextIndex::kAbsent) {
        ++counts[static_cast<std::size_t>(found)];
        return;
      }
      view = unescaped.emplace_back(view);
    }
    const std::int32_t id = index.insert(view, next);
    if (id == next) {
      texts.push_back(view);
      counts.push_back(0);
    }
    ++counts[static_cast<std::size_t>(id)];
  }
};

// Whether `text` is written as itself in an unquoted field: no character that needs quotes and
// nothing the field scanner would trim.
bool is_plain_field_text(const std::string& text) {
  const auto blank = [](char c) { return c == ' ' || c == '\t'; };
  return !text.empty() && !blank(text.front()) && !blank(text.back()) &&
         text.find_first_of("\"\r\n") == std::string::npos;
}

}  // namespace

void count_categories(const CategoryCells& cells, const CsvOptions& options,
                      CategoryCounts& counts) {
  counts.resize(cells.columns);
  const TextSet missing = missing_texts(options);
  const std::int64_t tasks = task_count(cells.rows);
  std::vector<std::vector<ColumnTally>> found(static_cast<std::size_t>(tasks));
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, tasks, 1),
                    [&](const tbb::blocked_range<std::int64_t>& range) {
                      std::string scratch;
                      for (std::int64_t task = range.begin(); task != range.end(); ++task) {
                        std::vector<ColumnTally>& mine = found[static_cast<std::size_t>(task)];
                        mine.resize(cells.columns);
                        const std::int64_t last = std::min(cells.rows, (task + 1) * kRowsPerTask);
                        for (std::int64_t r = task * kRowsPerTask; r < last; ++r) {
                          const LabelText* row =
                              cells.cells + static_cast<std::size_t>(r) * cells.columns;
                          for (std::size_t k = 0; k < cells.columns; ++k)
                            mine[k].add(cells.text, row[k], scratch);
                        }
                      }
                    });
  // Counts are integers: their sum is the same in any order.
  for (const std::vector<ColumnTally>& task : found) {
    for (std::size_t k = 0; k < task.size(); ++k) {
      const ColumnTally& tally = task[k];
      for (std::size_t i = 0; i < tally.texts.size(); ++i) {
        const std::string_view text = tally.texts[i];
        if (text.empty() || missing.contains(text)) continue;
        auto at = counts[k].find(text);
        if (at == counts[k].end()) at = counts[k].emplace(std::string(text), 0).first;
        at->second += tally.counts[i];
      }
    }
  }
}

void merge_category_counts(CategoryCounts& counts, const CategoryCounts& more) {
  counts.resize(std::max(counts.size(), more.size()));
  for (std::size_t k = 0; k < more.size(); ++k) {
    for (const auto& [text, count] : more[k]) counts[k][text] += count;
  }
}

std::vector<CategoricalColumn> category_vocabularies(std::vector<CategoricalColumn> columns,
                                                     const CategoryCounts& counts) {
  for (std::size_t k = 0; k < columns.size(); ++k) {
    columns[k].categories.clear();
    columns[k].counts.clear();
    if (k >= counts.size()) continue;
    for (const auto& [text, count] : counts[k]) {
      columns[k].categories.push_back(text);
      columns[k].counts.push_back(count);
    }
  }
  return columns;
}

std::vector<CategoricalColumn> given_vocabularies(const std::string& file,
                                                  const std::vector<CategoricalColumn>& columns,
                                                  const CsvOptions& options) {
  std::vector<CategoricalColumn> vocabularies;
  for (const CategoricalColumn& column : columns) {
    const auto found =
        std::find_if(options.categories.begin(), options.categories.end(),
                     [&](const CategoricalColumn& given) { return given.column == column.column; });
    if (found == options.categories.end()) {
      throw Error(file + ": no category vocabulary was given for the categorical column '" +
                  column.column + "'");
    }
    if (!std::is_sorted(found->categories.begin(), found->categories.end()) ||
        std::adjacent_find(found->categories.begin(), found->categories.end()) !=
            found->categories.end()) {
      throw Error(file + ": the categories given for column '" + column.column +
                  "' are not distinct and sorted by bytes");
    }
    vocabularies.push_back(*found);
  }
  return vocabularies;
}

void check_category_cap(const std::string& file, const std::vector<CategoricalColumn>& vocabularies,
                        int max_categories) {
  if (max_categories <= 0) return;
  for (const CategoricalColumn& column : vocabularies) {
    if (column.categories.size() <= static_cast<std::size_t>(max_categories)) continue;
    throw Error(file + ": categorical column '" + column.column + "' has " +
                std::to_string(column.categories.size()) + " distinct categories, more than the " +
                "cap of " + std::to_string(max_categories) +
                " (max_categories); raise the cap with --max-categories or leave the column out "
                "with --ignore " +
                column.column);
  }
}

void set_encoded_shape(Dataset& data, const CsvLayout& layout,
                       std::vector<CategoricalColumn> vocabularies) {
  std::vector<std::string> names;
  const std::vector<std::string>& numeric = data.feature_names;
  std::size_t next = 0;
  for (std::size_t k = 0; k < vocabularies.size(); ++k) {
    const auto position = static_cast<std::size_t>(layout.category_positions[k]);
    for (; next < position && next < numeric.size(); ++next) names.push_back(numeric[next]);
    for (const std::string& category : vocabularies[k].categories) {
      names.push_back(vocabularies[k].column + "=" + category);
    }
  }
  for (; next < numeric.size(); ++next) names.push_back(numeric[next]);
  data.feature_count = static_cast<int>(names.size());
  data.feature_names = std::move(names);
  data.categorical = std::move(vocabularies);
}

CsvLayout encoded_row_layout(const CsvLayout& layout,
                             const std::vector<CategoricalColumn>& vocabularies,
                             CategoryEncoding encoding) {
  CsvLayout encoded = layout;
  if (encoding != CategoryEncoding::after_parse) {
    auto inputs = std::make_shared<CategoryInputs>();
    inputs->collect_new = encoding == CategoryEncoding::in_parse_fitting;
    std::int32_t inputs_before = 0;
    for (std::size_t k = 0; k < vocabularies.size(); ++k) {
      const std::vector<std::string>& categories = vocabularies[k].categories;
      inputs->first_input.push_back(layout.category_positions[k] + inputs_before);
      inputs->categories.push_back(static_cast<std::int32_t>(categories.size()));
      inputs_before += static_cast<std::int32_t>(categories.size());
      TextIndex& index = inputs->index.emplace_back(categories.size());
      for (std::size_t i = 0; i < categories.size(); ++i) {
        index.insert(categories[i], static_cast<std::int32_t>(i));
      }
      inputs->plain_texts.push_back(
          std::all_of(categories.begin(), categories.end(), is_plain_field_text) ? 1 : 0);
    }
    std::int32_t numeric = 0;
    for (const ColumnRole role : layout.roles) numeric += role == ColumnRole::feature ? 1 : 0;
    inputs->row_inputs = numeric + inputs_before;
    encoded.category_inputs = std::move(inputs);
  }
  for (std::size_t c = 0; c < encoded.roles.size(); ++c) {
    if (encoded.roles[c] != ColumnRole::feature) continue;
    std::int32_t inputs_before = 0;
    for (std::size_t k = 0; k < vocabularies.size(); ++k) {
      if (layout.category_positions[k] <= layout.slots[c]) {
        inputs_before += static_cast<std::int32_t>(vocabularies[k].categories.size());
      }
    }
    encoded.slots[c] += inputs_before;
  }
  return encoded;
}

std::vector<CategoricalColumn> sample_vocabularies(const CsvLayout& layout, const CsvText& text,
                                                   std::string_view records,
                                                   const CsvOptions& options,
                                                   std::vector<CategoricalColumn> columns,
                                                   std::int64_t rows) {
  std::size_t features = 1, targets = 1;
  for (std::size_t c = 0; c < layout.roles.size(); ++c) {
    const auto end = static_cast<std::size_t>(layout.slots[c]) + 1;
    if (layout.roles[c] == ColumnRole::feature) features = std::max(features, end);
    if (layout.roles[c] == ColumnRole::target || layout.roles[c] == ColumnRole::number_or_label) {
      targets = std::max(targets, end);
    }
  }
  const std::size_t columns_count = layout.category_columns.size();
  std::vector<float> scratch_features(features), scratch_targets(targets);
  LabelText scratch_label{};
  std::vector<LabelText> cells(static_cast<std::size_t>(rows) * columns_count);
  const CsvRowSink sink{scratch_features.data(), 0, scratch_targets.data(), 0,
                        &scratch_label,          0, cells.data(),           columns_count};
  const ParsedChunk sample =
      parse_csv_records(layout, text, records.data(), records.data() + records.size(), rows, sink);
  CategoryCounts counts;
  tbb::task_arena one(1);  // a few thousand rows: not worth the tasks
  one.execute([&] {
    count_categories({text.begin, cells.data(), sample.rows, columns_count}, options, counts);
  });
  std::vector<CategoricalColumn> vocabularies = category_vocabularies(std::move(columns), counts);
  for (const CategoricalColumn& column : vocabularies) {
    if (column.categories.empty() ||
        (options.max_categories > 0 &&
         column.categories.size() > static_cast<std::size_t>(options.max_categories))) {
      return {};
    }
  }
  return vocabularies;
}

void finish_fitted_categories(const std::string& file, const char* text, const CsvLayout& layout,
                              const std::vector<ParsedChunk>& parsed, const CsvOptions& options,
                              Dataset& data) {
  const std::vector<CategoricalColumn> sample = data.categorical;
  const std::size_t columns = sample.size();
  // The rows holding each of the sample's categories, by its input's place in the row.
  std::vector<std::int64_t> input_counts(static_cast<std::size_t>(data.feature_count), 0);
  bool new_texts = false;
  for (const ParsedChunk& chunk : parsed) {
    for (std::size_t i = 0; i < chunk.category_counts.size(); ++i) {
      input_counts[i] += chunk.category_counts[i];
    }
    new_texts = new_texts || !chunk.new_categories.empty();
  }
  CategoryCounts counts(columns);
  std::size_t inputs_before = 0;
  for (std::size_t k = 0; k < columns; ++k) {
    const std::size_t first =
        static_cast<std::size_t>(layout.category_positions[k]) + inputs_before;
    for (std::size_t i = 0; i < sample[k].categories.size(); ++i) {
      if (input_counts[first + i] > 0)
        counts[k].emplace(sample[k].categories[i], input_counts[first + i]);
    }
    inputs_before += sample[k].categories.size();
  }
  // The new texts, tallied per chunk in parallel and merged in chunk order.
  std::vector<std::vector<ColumnTally>> found(parsed.size());
  tbb::parallel_for(std::size_t{0}, parsed.size(), [&](std::size_t c) {
    if (parsed[c].new_categories.empty()) return;
    std::string scratch;
    found[c].resize(columns);
    for (const NewCategoryCell& cell : parsed[c].new_categories) {
      found[c][static_cast<std::size_t>(cell.slot)].add(text, cell.text, scratch);
    }
  });
  for (const std::vector<ColumnTally>& chunk : found) {
    for (std::size_t k = 0; k < chunk.size(); ++k) {
      for (std::size_t i = 0; i < chunk[k].texts.size(); ++i) {
        const std::string_view category = chunk[k].texts[i];
        auto at = counts[k].find(category);
        if (at == counts[k].end()) at = counts[k].emplace(std::string(category), 0).first;
        at->second += chunk[k].counts[i];
      }
    }
  }
  std::vector<CategoricalColumn> vocabularies = category_vocabularies(sample, counts);
  check_category_cap(file, vocabularies, options.max_categories);
  if (!new_texts) {
    data.categorical = std::move(vocabularies);
    return;
  }
  recode_categories(data, layout.category_positions, vocabularies);
  // The new texts' inputs, in the recoded rows.
  std::vector<std::size_t> first_input(columns);
  inputs_before = 0;
  for (std::size_t k = 0; k < columns; ++k) {
    first_input[k] = static_cast<std::size_t>(layout.category_positions[k]) + inputs_before;
    inputs_before += data.categorical[k].categories.size();
  }
  const auto width = static_cast<std::size_t>(data.feature_count);
  tbb::parallel_for(std::size_t{0}, parsed.size(), [&](std::size_t c) {
    std::string scratch;
    for (const NewCategoryCell& cell : parsed[c].new_categories) {
      const auto k = static_cast<std::size_t>(cell.slot);
      const std::vector<std::string>& categories = data.categorical[k].categories;
      const std::string_view category = cell_text(text, cell.text, scratch);
      const auto index = static_cast<std::size_t>(
          std::lower_bound(categories.begin(), categories.end(), category) - categories.begin());
      const auto row = static_cast<std::size_t>(parsed[c].first_row + cell.row);
      data.features[row * width + first_input[k] + index] = 1.0f;
    }
  });
}

std::int64_t encode_categories(const CategoryCells& cells, const CsvLayout& layout,
                               const std::vector<CategoricalColumn>& vocabularies,
                               const float* parsed, int numeric, float* out, int encoded,
                               const CsvOptions& options, const FaultReport& report) {
  const std::size_t columns = cells.columns;
  const TextSet missing = missing_texts(options);
  // Each column's first input in an encoded row, and its categories' indices.
  std::vector<std::size_t> first_input(columns);
  std::vector<TextIndex> index;
  std::size_t inputs_before = 0;
  for (std::size_t k = 0; k < columns; ++k) {
    first_input[k] = static_cast<std::size_t>(layout.category_positions[k]) + inputs_before;
    inputs_before += vocabularies[k].categories.size();
    TextIndex& column = index.emplace_back(vocabularies[k].categories.size());
    for (std::size_t i = 0; i < vocabularies[k].categories.size(); ++i) {
      column.insert(vocabularies[k].categories[i], static_cast<std::int32_t>(i));
    }
  }
  // The numeric features between the groups: [start, end) of the parsed row goes to `to`.
  struct Span {
    std::size_t start, end, to;
  };
  std::vector<Span> spans;
  std::size_t start = 0;
  for (std::size_t k = 0; k <= columns; ++k) {
    const std::size_t end = k < columns ? static_cast<std::size_t>(layout.category_positions[k])
                                        : static_cast<std::size_t>(numeric);
    const std::size_t to = k == 0 ? 0 : first_input[k - 1] + vocabularies[k - 1].categories.size();
    if (end > start) spans.push_back({start, end, to});
    start = end;
  }

  const std::int64_t tasks = task_count(cells.rows);
  std::vector<std::int64_t> unseen(static_cast<std::size_t>(tasks), 0);
  std::vector<CsvFault> faults(static_cast<std::size_t>(tasks));
  std::vector<char> failed(static_cast<std::size_t>(tasks), 0);
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, tasks, 1),
      [&](const tbb::blocked_range<std::int64_t>& range) {
        std::string scratch;
        for (std::int64_t task = range.begin(); task != range.end(); ++task) {
          const auto t = static_cast<std::size_t>(task);
          const std::int64_t last = std::min(cells.rows, (task + 1) * kRowsPerTask);
          for (std::int64_t r = task * kRowsPerTask; r < last && failed[t] == 0; ++r) {
            const auto row_index = static_cast<std::size_t>(r);
            const float* from = parsed == nullptr
                                    ? nullptr
                                    : parsed + row_index * static_cast<std::size_t>(numeric);
            float* to = out + row_index * static_cast<std::size_t>(encoded);
            if (parsed != nullptr) {
              for (const Span& span : spans) {
                std::copy(from + span.start, from + span.end, to + span.to);
              }
            }
            const LabelText* row = cells.cells + row_index * columns;
            bool row_unseen = false;
            for (std::size_t k = 0; k < columns; ++k) {
              const std::string_view text = cell_text(cells.text, row[k], scratch);
              if (const std::int32_t at = index[k].find(text); at != TextIndex::kAbsent)
                  [[likely]] {
                to[first_input[k] + static_cast<std::size_t>(at)] = 1.0f;
                continue;
              }
              const bool is_missing = missing.contains(text);
              if (!is_missing && !text.empty()) {
                row_unseen = true;
                continue;
              }
              if (is_missing && options.missing == MissingPolicy::drop) {
                const std::size_t marked = vocabularies[k].categories.empty() ? 0 : first_input[k];
                if (marked < static_cast<std::size_t>(encoded)) {
                  to[marked] = std::numeric_limits<float>::quiet_NaN();
                }
                continue;
              }
              if (is_missing && options.missing != MissingPolicy::error) continue;
              // The first bad cell of the row in file order: the smallest column.
              const auto column = layout.category_columns[k];
              if (failed[t] != 0 && faults[t].column < column) continue;
              const char* at = cells.text + row[k].offset;
              faults[t] = {is_missing ? CsvProblem::missing_value : CsvProblem::empty_field,
                           at,
                           at,
                           at,
                           at + row[k].size(),
                           column,
                           0};
              failed[t] = 1;
            }
            if (row_unseen) ++unseen[t];
          }
        }
      });
  for (std::size_t t = 0; t < failed.size(); ++t) {
    if (failed[t] != 0) throw Error(report.message(faults[t]));
  }
  std::int64_t rows = 0;
  for (const std::int64_t count : unseen) rows += count;
  return rows;
}

void recode_categories(Dataset& data, const std::vector<std::int32_t>& category_positions,
                       const std::vector<CategoricalColumn>& vocabularies) {
  const std::vector<CategoricalColumn>& mine = data.categorical;
  const std::size_t columns = vocabularies.size();
  // Where each of the row's inputs goes in the recoded row.
  std::vector<std::size_t> destination;
  std::size_t old_before = 0, new_before = 0, numeric_done = 0;
  for (std::size_t k = 0; k <= columns; ++k) {
    const std::size_t numeric_end = k < columns
                                        ? static_cast<std::size_t>(category_positions[k])
                                        : static_cast<std::size_t>(data.feature_count) - old_before;
    for (; numeric_done < numeric_end; ++numeric_done) {
      destination.push_back(numeric_done + new_before);
    }
    if (k == columns) break;
    std::size_t j = 0;
    const std::vector<std::string>& all = vocabularies[k].categories;
    for (const std::string& category : mine[k].categories) {
      j = static_cast<std::size_t>(std::lower_bound(all.begin(), all.end(), category) -
                                   all.begin());
      if (j == all.size() || all[j] != category) {
        throw Error("recode_categories: category '" + category + "' of column '" +
                    vocabularies[k].column + "' is not in the merged vocabulary");
      }
      destination.push_back(numeric_end + new_before + j);
    }
    old_before += mine[k].categories.size();
    new_before += all.size();
  }
  const std::size_t old_width = static_cast<std::size_t>(data.feature_count);
  const std::size_t new_width = old_width - old_before + new_before;
  std::vector<float> recoded(static_cast<std::size_t>(data.rows) * new_width, 0.0f);
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, data.rows, 1024),
                    [&](const tbb::blocked_range<std::int64_t>& range) {
                      for (std::int64_t r = range.begin(); r != range.end(); ++r) {
                        const float* from =
                            data.features.data() + static_cast<std::size_t>(r) * old_width;
                        float* to = recoded.data() + static_cast<std::size_t>(r) * new_width;
                        for (std::size_t i = 0; i < old_width; ++i) to[destination[i]] = from[i];
                      }
                    });
  // A row marked for dropping (NaN in a column's first input) stays marked at the new first.
  std::vector<std::string> numeric;
  std::size_t group = 0;
  old_before = 0;
  for (std::size_t k = 0; k < columns; ++k) {
    const std::size_t old_first = static_cast<std::size_t>(category_positions[k]) + old_before;
    const std::size_t new_first = static_cast<std::size_t>(category_positions[k]) + group;
    if (!mine[k].categories.empty() && !vocabularies[k].categories.empty()) {
      for (std::int64_t r = 0; r < data.rows; ++r) {
        const float value = data.features[static_cast<std::size_t>(r) * old_width + old_first];
        if (std::isnan(value)) {
          float* to = recoded.data() + static_cast<std::size_t>(r) * new_width + new_first;
          std::fill(to, to + vocabularies[k].categories.size(), 0.0f);
          to[0] = value;
        }
      }
    }
    old_before += mine[k].categories.size();
    group += vocabularies[k].categories.size();
  }
  // The numeric features' names, then the shape with the merged vocabularies.
  CsvLayout layout;
  layout.category_positions = category_positions;
  old_before = 0;
  std::size_t position = 0;
  for (std::size_t k = 0; k <= columns; ++k) {
    const std::size_t numeric_end =
        k < columns ? static_cast<std::size_t>(category_positions[k]) + old_before : old_width;
    for (; position < numeric_end; ++position) numeric.push_back(data.feature_names[position]);
    if (k == columns) break;
    position += mine[k].categories.size();
    old_before += mine[k].categories.size();
  }
  data.features = std::move(recoded);
  data.feature_names = std::move(numeric);
  set_encoded_shape(data, layout, vocabularies);
}

}  // namespace shardprop::detail
