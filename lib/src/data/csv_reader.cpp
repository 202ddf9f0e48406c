// read_csv: map the file (or decompress it into memory), read the header, give each column a role,
// cut the records into chunks, parse the chunks in parallel straight into the output rows, then map
// class labels. An error is reported for the first bad chunk in file order, so it does not depend
// on chunking or threads.
#include <sys/mman.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/csv_categorical.hpp"
#include "data/csv_format.hpp"
#include "data/csv_labels.hpp"
#include "data/csv_parser.hpp"
#include "data/csv_reader.hpp"
#include "data/imputation_fit.hpp"
#include "data/input_source.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

constexpr std::size_t kMaxClasses = std::size_t{1} << 24;  // class indices are exact floats
constexpr std::int64_t kSampleRows = 16384;                // to start fitting category vocabularies

// Sizes `values` to `count` zeros. A large array asks for transparent huge pages before the
// zero fill first touches it: on a 283 MB output that takes 41 ms instead of 105 ms, as there
// are 512 times fewer page faults. The kernel zeroes each page it faults in, most of that time,
// so the pages are faulted in by all the arena's threads (MADV_POPULATE_WRITE, Linux 5.14; on an
// older kernel the zero fill faults them in alone) before the vector's own zero fill, which
// then runs on present pages.
void resize_zeroed(std::vector<float>& values, std::size_t count) {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  if (count * sizeof(float) < 4 * kHugePage) {
    values.resize(count);
    return;
  }
  values.reserve(count);
  const auto first = reinterpret_cast<std::uintptr_t>(values.data());
  const std::uintptr_t begin = (first + kHugePage - 1) / kHugePage * kHugePage;
  const std::uintptr_t end = (first + count * sizeof(float)) / kHugePage * kHugePage;
  if (end > begin) {
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
    constexpr std::uintptr_t kPiece = 8 * kHugePage;
    tbb::parallel_for(begin, end, kPiece, [&](std::uintptr_t piece) {
      ::madvise(reinterpret_cast<void*>(piece), std::min(kPiece, end - piece), MADV_POPULATE_WRITE);
    });
#endif
  }
  values.resize(count);
}

}  // namespace

namespace detail {

void read_csv_rows(const std::string& file, const CsvLayout& layout,
                   const std::vector<std::string>& names, const CsvOptions& options,
                   const CsvText& text, std::string_view records, const FaultReport& report,
                   Dataset& data) {
  const auto feature_count = static_cast<std::size_t>(data.feature_count);
  const auto target_width = static_cast<std::size_t>(data.target_width);
  const auto label_column = static_cast<std::size_t>(
      std::find_if(layout.roles.begin(), layout.roles.end(),
                   [](ColumnRole role) {
                     return role == ColumnRole::label || role == ColumnRole::number_or_label;
                   }) -
      layout.roles.begin());
  const bool has_labels = label_column < names.size();

  // Every row's label is written by the parse (no zero fill needed); so is every numeric
  // feature and category text of a row with categorical columns, which are encoded afterwards.
  std::unique_ptr<LabelText[]> labels;
  std::size_t label_rows = 0;
  const std::size_t category_columns = layout.category_columns.size();
  // Categorical columns: with the vocabularies given, the parse writes the encoded rows
  // (numbers and one-hot inputs) itself. Vocabularies to fit start from those of the first rows,
  // and the parse also collects the texts beyond them. A sample that cannot serve leaves the
  // encoding until after the parse: the numbers go to rows of their own and the texts are
  // recorded, to be counted and encoded once the vocabularies are known.
  const bool vocabularies_given = category_columns > 0 && !options.categories.empty();
  CategoryEncoding encoding = CategoryEncoding::after_parse;
  CsvLayout encoded_layout;
  if (vocabularies_given) {
    set_encoded_shape(data, layout, given_vocabularies(file, data.categorical, options));
    encoding = CategoryEncoding::in_parse;
  } else if (category_columns > 0) {
    std::vector<CategoricalColumn> sample =
        sample_vocabularies(layout, text, records, options, data.categorical, kSampleRows);
    if (!sample.empty()) {
      set_encoded_shape(data, layout, std::move(sample));
      encoding = CategoryEncoding::in_parse_fitting;
    }
  }
  const bool encode_in_parse = encoding != CategoryEncoding::after_parse;
  if (encode_in_parse) encoded_layout = encoded_row_layout(layout, data.categorical, encoding);
  const CsvLayout& parse_layout = encode_in_parse ? encoded_layout : layout;
  const auto row_width = static_cast<std::size_t>(data.feature_count);
  std::unique_ptr<float[]> numeric;
  std::unique_ptr<LabelText[]> categories;
  const std::vector<ParsedChunk> parsed =
      parse_rows(parse_layout, text, records, options.chunk_bytes, report, [&](std::int64_t rows) {
        data.rows = rows;
        const auto count = static_cast<std::size_t>(rows);
        float* features = nullptr;
        if (category_columns == 0 || encode_in_parse) {
          resize_zeroed(data.features, count * row_width);
          features = data.features.data();
        } else {
          numeric = std::make_unique_for_overwrite<float[]>(count * feature_count);
          features = numeric.get();
        }
        if (!encode_in_parse) {
          categories = std::make_unique_for_overwrite<LabelText[]>(count * category_columns);
        }
        resize_zeroed(data.targets, count * target_width);
        label_rows = has_labels ? count : 0;
        labels = std::make_unique_for_overwrite<LabelText[]>(label_rows);
        return CsvRowSink{features,     row_width, data.targets.data(), target_width,
                          labels.get(), 1,         categories.get(),    category_columns};
      });
  if (encoding == CategoryEncoding::in_parse) {
    data.unseen_category_rows = 0;
    for (const ParsedChunk& chunk : parsed) data.unseen_category_rows += chunk.unseen_category_rows;
  } else if (encoding == CategoryEncoding::in_parse_fitting) {
    finish_fitted_categories(file, text.begin, layout, parsed, options, data);
    data.unseen_category_rows = 0;
  } else if (category_columns > 0) {
    const CategoryCells cells{text.begin, categories.get(), data.rows, category_columns};
    CategoryCounts counts;
    count_categories(cells, options, counts);
    std::vector<CategoricalColumn> vocabularies = category_vocabularies(data.categorical, counts);
    check_category_cap(file, vocabularies, options.max_categories);
    set_encoded_shape(data, layout, std::move(vocabularies));
    resize_zeroed(data.features, static_cast<std::size_t>(data.rows) *
                                     static_cast<std::size_t>(data.feature_count));
    data.unseen_category_rows = encode_categories(
        cells, layout, data.categorical, numeric.get(), static_cast<int>(feature_count),
        data.features.data(), data.feature_count, options, report);
  }

  if (layout.missing == MissingPolicy::drop) {
    detail::drop_missing_rows(data, has_labels ? labels.get() : nullptr);
    label_rows = has_labels ? static_cast<std::size_t>(data.rows) : 0;
  }

  const bool number_or_label =
      has_labels && layout.roles[label_column] == ColumnRole::number_or_label;
  const bool classes =
      options.target_kind == TargetKind::classes ||
      (number_or_label && std::any_of(parsed.begin(), parsed.end(), [](const ParsedChunk& chunk) {
         return !chunk.labels_are_numbers;
       }));
  if (classes) {
    data.class_names = assign_class_indices(text.begin, {labels.get(), label_rows},
                                            data.targets.data(), target_width);
    if (data.class_names.size() > kMaxClasses) {
      throw Error(file + ": " + std::to_string(data.class_names.size()) +
                  " distinct class labels in " + column_label(label_column, names) + "; at most " +
                  std::to_string(kMaxClasses) + " are supported");
    }
  } else if (number_or_label) {
    // A numeric target column: its nan, inf or overflowing values are errors after all.
    for (const ParsedChunk& chunk : parsed) {
      if (chunk.has_non_finite_label) throw Error(report.message(chunk.non_finite_label));
    }
  }
}

}  // namespace detail

Dataset read_csv(const std::filesystem::path& path, const CsvOptions& options) {
  const std::string file = detail::input_name(path);
  detail::check_csv_options(file, options);
  // A plain file is mapped; compressed input and standard input are read into memory.
  const detail::InputText input(path);
  const detail::CsvRecordsRegion region =
      detail::find_csv_records(input.view(), true, file, options);
  Dataset data;
  const detail::CsvLayout layout = detail::plan_columns(region.names, options, file, data);
  const std::string_view text = region.text;
  const detail::FaultReport report(file, text, &region.names,
                                   static_cast<std::int64_t>(region.names.size()));
  detail::read_csv_rows(file, layout, region.names, options,
                        {text.data(), text.data() + text.size()}, text.substr(region.begin), report,
                        data);
  return data;
}

}  // namespace shardprop
