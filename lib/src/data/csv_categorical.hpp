// One-hot encoding of categorical columns: counting the texts the record parser recorded into
// vocabularies (distinct texts sorted by bytes, with counts) and expanding parsed rows of
// numeric features into rows with one input per category. Leaves out finding the texts (the
// record parser) and deciding which vocabularies to use (the readers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/csv_format.hpp"
#include "data/csv_parser.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// The category texts of `rows` parsed rows: cells[r·columns + k] is row r's text of category
// column k (CsvLayout::category_columns[k]), its offset counted from `text`.
struct CategoryCells {
  const char* text = nullptr;
  const LabelText* cells = nullptr;
  std::int64_t rows = 0;
  std::size_t columns = 0;
};

// Per category column, each distinct text and the rows holding it, in byte order.
using CategoryCounts = std::vector<std::map<std::string, std::int64_t, std::less<>>>;

// Adds the cells' texts to `counts` (resized to one map per column), leaving out missing cells
// (a text in options.na_values) and empty ones. Runs in the caller's task_arena; the result
// does not depend on it.
void count_categories(const CategoryCells& cells, const CsvOptions& options,
                      CategoryCounts& counts);

// Sums `more` into `counts` (same columns).
void merge_category_counts(CategoryCounts& counts, const CategoryCounts& more);

// The vocabularies of `columns` (named, as plan_columns leaves data.categorical) from counts.
std::vector<CategoricalColumn> category_vocabularies(std::vector<CategoricalColumn> columns,
                                                     const CategoryCounts& counts);

// options.categories in the order of `columns` (data.categorical from plan_columns), matched by
// column name. Throws Error naming a column without a vocabulary.
std::vector<CategoricalColumn> given_vocabularies(const std::string& file,
                                                  const std::vector<CategoricalColumn>& columns,
                                                  const CsvOptions& options);

// Throws Error when a vocabulary holds more than max_categories categories (0: no cap), naming
// the column, the count and the cap, and what to do.
void check_category_cap(const std::string& file, const std::vector<CategoricalColumn>& vocabularies,
                        int max_categories);

// Makes data's feature count and names the encoded ones (each categorical column's inputs
// "COLUMN=CATEGORY" in its place) and data.categorical `vocabularies`. REQUIRES: data has the
// numeric feature names plan_columns gave with `layout`.
void set_encoded_shape(Dataset& data, const CsvLayout& layout,
                       std::vector<CategoricalColumn> vocabularies);

// How the category texts of a read become one-hot inputs.
enum class CategoryEncoding {
  after_parse,       // encode_categories fills the gaps the parse left
  in_parse,          // the parse fills them (CsvLayout::category_inputs)
  in_parse_fitting,  // the parse fills them and collects new texts (CategoryInputs::collect_new)
};

// `layout` with each numeric feature's slot moved to its place in the encoded row (after the
// inputs of the category columns before it), so that a parse writes rows with gaps for the
// one-hot inputs, filled as `encoding` says.
CsvLayout encoded_row_layout(const CsvLayout& layout,
                             const std::vector<CategoricalColumn>& vocabularies,
                             CategoryEncoding encoding);

// Vocabularies from the first `rows` records of `records` (fewer at a bad record), to start a
// read that fits its vocabularies with the parse filling the inputs. Empty when they cannot:
// a column without categories in them, or more than options.max_categories.
std::vector<CategoricalColumn> sample_vocabularies(const CsvLayout& layout, const CsvText& text,
                                                   std::string_view records,
                                                   const CsvOptions& options,
                                                   std::vector<CategoricalColumn> columns,
                                                   std::int64_t rows);

// After a parse with CategoryEncoding::in_parse_fitting of data's vocabularies: makes them the
// read's (the rows' counts, and the new texts), and re-encodes the rows when there are new
// texts. Throws Error for more categories than options.max_categories, as check_category_cap.
void finish_fitted_categories(const std::string& file, const char* text, const CsvLayout& layout,
                              const std::vector<ParsedChunk>& parsed, const CsvOptions& options,
                              Dataset& data);

// Writes the encoded rows: `parsed` holds cells.rows rows of `numeric` numeric features, `out`
// (zero-filled) the same rows of `encoded` inputs: the numeric features (already in place when
// `parsed` is null: a parse with encoded_row_layout wrote them) and, for each category
// column, 1 at its category's input. A category not in its vocabulary leaves its inputs 0; a
// missing cell (options.na_values) too, except that MissingPolicy::drop marks the row with NaN
// in the column's first input (the drop step after the parse removes it) and
// MissingPolicy::error throws report's missing_value message for the first missing cell in file
// order (an empty cell that is not missing: empty_field). Returns the rows holding a category
// not in its vocabulary. Runs in the caller's task_arena.
std::int64_t encode_categories(const CategoryCells& cells, const CsvLayout& layout,
                               const std::vector<CategoricalColumn>& vocabularies,
                               const float* parsed, int numeric, float* out, int encoded,
                               const CsvOptions& options, const FaultReport& report);

// Re-encodes data (encoded with data.categorical, whose categories are all in `vocabularies`,
// same columns) with `vocabularies`: each one-hot input moves to its category's place in the
// larger vocabulary. category_positions: CsvLayout::category_positions of the read.
void recode_categories(Dataset& data, const std::vector<std::int32_t>& category_positions,
                       const std::vector<CategoricalColumn>& vocabularies);

}  // namespace shardprop::detail
