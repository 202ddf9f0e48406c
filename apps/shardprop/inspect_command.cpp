// `shardprop inspect`: summarize_csv does the work; this file turns its summary into an aligned
// table or JSON.
#include "inspect_command.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "command_arena.hpp"
#include "model_input.hpp"
#include "preamble_options.hpp"
#include "shardprop/csv_summary.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/loss_choice.hpp"

namespace shardprop::cli {

CLI::App* add_inspect_command(CLI::App& app, InspectOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "Summarize a CSV file's columns: type, missing values, range or categories, and the "
      "target the trainer would pick");
  cmd->add_option("data", o.data, "The CSV file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--delimiter", o.delimiter, "Field delimiter: one character, or 'tab'")
      ->capture_default_str();
  cmd->add_flag("--no-header", o.no_header, "The first line is data; columns are named 0, 1, ...");
  add_preamble_options(cmd, o.skip_rows, o.comment);
  cmd->add_option("--target", o.targets,
                  "Target column(s): header names or 0-based indices, comma-separated (default: "
                  "the last column)")
      ->delimiter(',');
  cmd->add_option("--na-values", o.na_values,
                  "Field texts that mean a missing value, comma-separated; an empty item is the "
                  "empty field (default: '', NA, N/A, n/a, NaN, nan, -nan, NULL, null, None, ?, "
                  "#N/A, <NA>)")
      ->each([&o](const std::string&) { o.na_values_given = true; });
  cmd->add_option("--threads", o.threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_flag("--json", o.json, "Print the summary as one JSON object instead of a table");
  return cmd;
}

namespace {

constexpr std::size_t kMaxShown = 24;  // bytes of a name or category in the table

std::string shortened(const std::string& text) {
  std::string shown;
  for (const char c : text) shown += c == '\n' ? std::string("\\n") : std::string(1, c);
  if (shown.size() <= kMaxShown) return shown;
  std::size_t size = kMaxShown - 3;
  while (size > 0 && (static_cast<unsigned char>(shown[size]) & 0xC0) == 0x80) --size;
  return shown.substr(0, size) + "...";
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

bool numeric(const CsvColumnSummary& column) {
  return column.type == CsvColumnType::integer || column.type == CsvColumnType::number;
}

std::string distinct_text(const CsvColumnSummary& column) {
  if (column.distinct_exceeded) return "> " + std::to_string(kCsvSummaryMaxDistinct);
  return std::to_string(column.distinct);
}

std::string categories_text(const CsvColumnSummary& column) {
  if (column.type != CsvColumnType::text || column.distinct_exceeded) return "";
  std::string text;
  for (const auto& [category, count] : column.top) {
    if (!text.empty()) text += ", ";
    text += "'" + shortened(category) + "' " + std::to_string(count);
  }
  if (column.distinct > static_cast<std::int64_t>(column.top.size())) text += ", ...";
  return text;
}

// The loss `train --loss auto` would pick, or why the first rows cannot tell.
struct AutoLoss {
  std::optional<LossChoice> choice;
  std::string problem;
};

void print_table(const InspectOptions& o, const CsvSummary& summary, const AutoLoss& loss) {
  std::printf("%s: %lld rows, %zu columns", o.data.c_str(), static_cast<long long>(summary.rows),
              summary.columns.size());
  if (summary.target >= 0) {
    const auto t = static_cast<std::size_t>(summary.target);
    std::printf("; target: column %zu '%s'", t + 1, summary.columns[t].name.c_str());
  }
  std::printf("\n");
  if (loss.choice) {
    std::printf("train --loss auto: %s (%s)\n", std::string(to_string(loss.choice->loss)).c_str(),
                loss.choice->reason.c_str());
  } else if (!loss.problem.empty()) {
    std::printf("train --loss auto: cannot tell from the first rows (%s)\n", loss.problem.c_str());
  }
  std::printf("\n");
  std::vector<std::vector<std::string>> rows = {
      {"column", "name", "type", "missing", "min", "mean", "max", "distinct", "top categories"}};
  for (std::size_t c = 0; c < summary.columns.size(); ++c) {
    const CsvColumnSummary& column = summary.columns[c];
    const bool stats = numeric(column);
    rows.push_back({std::to_string(c + 1) + (column.target ? " *" : ""), shortened(column.name),
                    to_string(column.type), std::to_string(column.missing),
                    stats ? number(column.min) : "", stats ? number(column.mean) : "",
                    stats ? number(column.max) : "", distinct_text(column),
                    categories_text(column)});
  }
  std::vector<std::size_t> widths(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      const bool right = i == 0 || (i >= 3 && i <= 7);  // counts and numbers
      const std::string pad(widths[i] - row[i].size(), ' ');
      if (i + 1 == row.size()) {
        line += row[i];
      } else {
        line += right ? pad + row[i] : row[i] + pad;
        line += "  ";
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
  if (summary.target >= 0) std::printf("\n* the target column\n");
}

nlohmann::json to_json(const InspectOptions& o, const CsvSummary& summary, const AutoLoss& loss) {
  nlohmann::json columns = nlohmann::json::array();
  for (std::size_t c = 0; c < summary.columns.size(); ++c) {
    const CsvColumnSummary& column = summary.columns[c];
    nlohmann::json j{{"index", c},
                     {"name", column.name},
                     {"type", to_string(column.type)},
                     {"missing", column.missing},
                     {"target", column.target}};
    if (numeric(column)) {
      j["min"] = column.min;
      j["mean"] = column.mean;
      j["max"] = column.max;
    }
    if (column.distinct_exceeded) {
      j["distinct"] = nullptr;
      j["distinct_more_than"] = kCsvSummaryMaxDistinct;
    } else {
      j["distinct"] = column.distinct;
      nlohmann::json top = nlohmann::json::array();
      for (const auto& [category, count] : column.top) {
        top.push_back({{"value", category}, {"count", count}});
      }
      j["top"] = top;
    }
    columns.push_back(j);
  }
  nlohmann::json j{{"file", o.data}, {"rows", summary.rows}, {"columns", columns}};
  j["target"] = summary.target >= 0 ? nlohmann::json(summary.target) : nlohmann::json(nullptr);
  if (loss.choice) {
    j["auto_loss"] = {{"loss", to_string(loss.choice->loss)}, {"reason", loss.choice->reason}};
  } else if (!loss.problem.empty()) {
    j["auto_loss"] = {{"loss", nullptr}, {"reason", loss.problem}};
  } else {
    j["auto_loss"] = nullptr;
  }
  return j;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  std::size_t from = 0;
  for (;;) {
    const std::size_t comma = text.find(',', from);
    items.push_back(text.substr(from, comma == std::string::npos ? comma : comma - from));
    if (comma == std::string::npos) return items;
    from = comma + 1;
  }
}

// What `train --loss auto` would pick with these read options, from the file's first rows
// (choose_loss reads them again, so a pipe, read once by the summary, gets none). Text
// columns besides the target are passed as categorical, as train needs them, and missing
// features as filled in, so that only the target decides; what keeps the first rows from
// telling (a missing target) is the reason.
AutoLoss auto_loss(const InspectOptions& o, CsvOptions csv, const CsvSummary& summary) {
  std::error_code error;
  if (summary.target < 0 || !std::filesystem::is_regular_file(o.data, error)) return {};
  for (const CsvColumnSummary& column : summary.columns) {
    if (column.type == CsvColumnType::text && !column.target)
      csv.categorical.push_back(column.name);
  }
  csv.missing = MissingPolicy::zero;
  try {
    const LossChoice choice = choose_loss(o.data, csv);
    if (choice.no_data_rows) return {};
    return {choice, ""};
  } catch (const Error& e) {
    return {std::nullopt, e.what()};
  }
}

int inspect(const InspectOptions& o) {
  CsvOptions csv;
  csv.delimiter = parse_delimiter(o.delimiter);
  csv.header = !o.no_header;
  csv.targets = o.targets;
  set_preamble_options(csv, o.skip_rows, o.comment);
  if (o.na_values_given) csv.na_values = split_commas(o.na_values);
  const CsvSummary summary = summarize_csv(o.data, csv);
  const AutoLoss loss = auto_loss(o, csv, summary);
  if (o.json) {
    std::printf("%s\n", to_json(o, summary, loss)
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                            .c_str());
  } else {
    print_table(o, summary, loss);
  }
  return 0;
}

}  // namespace

int run_inspect(const InspectOptions& o) {
  CommandArena arena(o.threads);
  return arena.execute([&] { return inspect(o); });
}

}  // namespace shardprop::cli
