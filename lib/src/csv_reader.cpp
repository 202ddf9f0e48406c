// A plain numeric CSV reader: header line, one value per field, LF or CRLF, optional UTF-8 BOM.
// Quoted fields are rejected with a clear message; the full RFC 4180 pipeline replaces this.
#include <fast_float/fast_float.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

struct Line {
  std::string_view text;
  std::int64_t number;  // 1-based
};

std::vector<std::string_view> split(std::string_view line, char delimiter) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = line.find(delimiter, start);
    if (end == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, end - start));
    start = end + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Dataset read_csv(const std::filesystem::path& path, const CsvOptions& options) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(file + ": cannot open for reading");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(file + ": read error");
  std::string_view text = content;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);

  std::vector<Line> lines;
  std::int64_t number = 0;
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back({line, number});
  }
  while (!lines.empty() && trim(lines.back().text).empty()) lines.pop_back();
  if (lines.empty()) throw Error(file + ": empty file (a header line is required)");

  const std::vector<std::string_view> header = split(lines[0].text, options.delimiter);
  const int columns = static_cast<int>(header.size());
  if (columns < 2) {
    throw Error(file + ":1: the header has " + std::to_string(columns) +
                " column; at least one feature and one target are needed");
  }
  int target = columns - 1;
  if (!options.target.empty()) {
    target = -1;
    for (int c = 0; c < columns; ++c) {
      if (trim(header[c]) == options.target) target = c;
    }
    if (target < 0) {
      int index = -1;
      const char* first = options.target.data();
      const char* last = first + options.target.size();
      const auto [ptr, ec] = std::from_chars(first, last, index);
      if (ec == std::errc() && ptr == last) {
        if (index < 0 || index >= columns) {
          throw Error(file + ": target column index " + options.target + " is out of range (" +
                      std::to_string(columns) + " columns)");
        }
        target = index;
      } else {
        throw Error(file + ": no column named '" + options.target + "' in the header");
      }
    }
  }

  Dataset data;
  data.feature_count = columns - 1;
  data.target_width = 1;
  for (int c = 0; c < columns; ++c) {
    if (c == target) {
      data.target_name = std::string(trim(header[c]));
    } else {
      data.feature_names.emplace_back(trim(header[c]));
    }
  }
  data.features.reserve((lines.size() - 1) * data.feature_count);
  data.targets.reserve(lines.size() - 1);
  for (std::size_t l = 1; l < lines.size(); ++l) {
    const Line& line = lines[l];
    const std::string where = file + ":" + std::to_string(line.number);
    if (trim(line.text).empty()) throw Error(where + ": blank line inside the data");
    const std::vector<std::string_view> fields = split(line.text, options.delimiter);
    if (static_cast<int>(fields.size()) != columns) {
      throw Error(where + ": expected " + std::to_string(columns) + " fields, found " +
                  std::to_string(fields.size()));
    }
    std::size_t column_start = 0;
    for (int c = 0; c < columns; ++c) {
      const std::string_view field = trim(fields[c]);
      // Built only on error: the happy path allocates nothing per field.
      auto fail = [&](const std::string& what) {
        throw Error(where + ":" + std::to_string(column_start + 1) + " (column " +
                    std::to_string(c + 1) + " '" + std::string(trim(header[c])) + "'): " + what);
      };
      if (field.empty()) fail("empty field");
      if (field.front() == '"') fail("quoted fields are not supported yet");
      float value = 0.0f;
      const auto result = fast_float::from_chars(field.data(), field.data() + field.size(), value);
      if (result.ec != std::errc() || result.ptr != field.data() + field.size()) {
        fail("'" + std::string(field) + "' is not a number");
      }
      if (!std::isfinite(value)) fail("'" + std::string(field) + "' is not finite");
      (c == target ? data.targets : data.features).push_back(value);
      column_start += fields[c].size() + 1;
    }
  }
  data.rows = static_cast<std::int64_t>(lines.size() - 1);
  return data;
}

}  // namespace shardprop
