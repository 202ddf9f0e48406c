// The parsed-CSV cache: "SPCACHE1", a JSON header (key, shapes, names), zero padding to 64
// bytes, then the feature and target floats. Validated fully before use; anything odd means
// "rebuild".
#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/atomic_file.hpp"
#include "base/mapped_file.hpp"
#include "data/csv_cache.hpp"
#include "data/input_source.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/version.hpp"

namespace shardprop {
namespace {

using nlohmann::json;

constexpr char kMagic[8] = {'S', 'P', 'C', 'A', 'C', 'H', 'E', '1'};
constexpr std::size_t kAlign = 64;

std::string target_kind_name(TargetKind kind) {
  switch (kind) {
    case TargetKind::automatic:
      return "automatic";
    case TargetKind::numeric:
      return "numeric";
    case TargetKind::classes:
      return "classes";
  }
  return "?";
}

// Vocabularies as [{"column", "categories", "counts"}...].
json categories_json(const std::vector<CategoricalColumn>& columns) {
  json array = json::array();
  for (const CategoricalColumn& c : columns) {
    array.push_back({{"column", c.column}, {"categories", c.categories}, {"counts", c.counts}});
  }
  return array;
}

// Everything the parsed result depends on. chunk_bytes is not part of it: results do not
// depend on the chunking.
std::string cache_key(const std::filesystem::path& path, const CsvOptions& options) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    throw Error(path.string() + ": cannot open: " + std::strerror(errno));
  }
  const std::int64_t mtime_ns =
      static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
  json key{{"file", std::filesystem::absolute(path).string()},
           {"size", static_cast<std::int64_t>(info.st_size)},
           {"mtime_ns", mtime_ns},
           {"delimiter", std::string(1, options.delimiter)},
           {"header", options.header},
           {"targets", options.targets},
           {"ignore", options.ignore},
           {"target_kind", target_kind_name(options.target_kind)},
           {"allow_non_finite", options.allow_non_finite},
           {"version", version()}};
  // Only when set, so that the keys (and file names) of existing caches stay as they were.
  if (!options.features.empty()) key["features"] = options.features;
  if (options.skip_rows != 0) key["skip_rows"] = options.skip_rows;
  if (options.comment != '\0') key["comment"] = std::string(1, options.comment);
  // A read that succeeds with the error policy holds no missing cell, whatever the tokens.
  if (options.missing != MissingPolicy::error) {
    key["missing"] = std::string(to_string(options.missing));
    key["na_values"] = options.na_values;
  }
  if (!options.categorical.empty()) {
    key["categorical"] = options.categorical;
    key["max_categories"] = options.max_categories;
    if (!options.categories.empty()) key["categories"] = categories_json(options.categories);
  }
  // A file or column name need not be UTF-8; the key only has to tell option sets apart.
  return key.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::uint64_t fnv1a(const std::string& text) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// The cached dataset if `cache` holds exactly `key`'s data; nothing otherwise.
bool load(const std::filesystem::path& cache, const std::string& key, MissingPolicy missing,
          Dataset& out) {
  std::unique_ptr<detail::MappedFile> mapped;
  try {
    mapped = std::make_unique<detail::MappedFile>(cache);
  } catch (const Error&) {
    return false;  // no cache yet, or unreadable: parse instead
  }
  const detail::MappedFile& map = *mapped;
  if (map.size() < 16 || std::memcmp(map.data(), kMagic, 8) != 0) return false;
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, map.data() + 8, 8);
  if (header_length > map.size() - 16) return false;
  const json header = json::parse(map.data() + 16, map.data() + 16 + header_length, nullptr,
                                  /*allow_exceptions=*/false);
  if (!header.is_object() || header.value("key", "") != key) return false;
  try {
    Dataset d;
    d.rows = header.at("rows").get<std::int64_t>();
    d.feature_count = header.at("feature_count").get<int>();
    d.target_width = header.at("target_width").get<int>();
    d.feature_names = header.at("feature_names").get<std::vector<std::string>>();
    d.target_names = header.at("target_names").get<std::vector<std::string>>();
    d.class_names = header.at("class_names").get<std::vector<std::string>>();
    if (header.contains("categorical")) {
      for (const json& c : header.at("categorical")) {
        d.categorical.push_back({c.at("column").get<std::string>(),
                                 c.at("categories").get<std::vector<std::string>>(),
                                 c.at("counts").get<std::vector<std::int64_t>>()});
      }
    }
    d.unseen_category_rows = header.value("unseen_category_rows", std::int64_t{0});
    if (d.rows < 0 || d.feature_count < 1 || d.target_width < 1) return false;
    const std::size_t begin = (16 + header_length + kAlign - 1) / kAlign * kAlign;
    const std::size_t features = static_cast<std::size_t>(d.rows) * d.feature_count;
    const std::size_t targets = static_cast<std::size_t>(d.rows) * d.target_width;
    if (map.size() != begin + (features + targets) * sizeof(float)) return false;
    const float* data = reinterpret_cast<const float*>(map.data() + begin);
    d.features.assign(data, data + features);
    d.targets.assign(data + features, data + features + targets);
    // A damaged cache must not feed NaNs or bad class indices to training; the missing cells of
    // a read to be imputed are NaN, as read_csv returns them.
    d.validate(/*allow_missing=*/missing == MissingPolicy::mean ||
               missing == MissingPolicy::median || missing == MissingPolicy::zero);
    if (!d.class_names.empty()) {
      for (const float t : d.targets) {
        if (t < 0.0f || t >= static_cast<float>(d.class_names.size())) return false;
      }
    }
    out = std::move(d);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void store(const std::filesystem::path& cache, const std::string& key, const Dataset& d) {
  std::string header;
  try {
    json fields{{"key", key},
                {"rows", d.rows},
                {"feature_count", d.feature_count},
                {"target_width", d.target_width},
                {"feature_names", d.feature_names},
                {"target_names", d.target_names},
                {"class_names", d.class_names}};
    if (!d.categorical.empty()) {
      fields["categorical"] = categories_json(d.categorical);
      fields["unseen_category_rows"] = d.unseen_category_rows;
    }
    header = fields.dump();
  } catch (const json::exception&) {
    throw Error(cache.string() +
                ": a column or class name is not valid UTF-8 text; the cache "
                "stores names as JSON");
  }
  const std::uint64_t length = header.size();
  std::string prefix(kMagic, 8);
  prefix.append(reinterpret_cast<const char*>(&length), 8);
  prefix += header;
  prefix.append((kAlign - prefix.size() % kAlign) % kAlign, '\0');
  const std::span<const std::byte> pieces[] = {
      std::as_bytes(std::span(prefix.data(), prefix.size())),
      std::as_bytes(std::span(d.features)),
      std::as_bytes(std::span(d.targets)),
  };
  detail::write_file_atomically(cache, pieces);
}

}  // namespace

namespace detail {

std::filesystem::path csv_cache_path(const std::filesystem::path& path, const CsvOptions& options,
                                     const std::filesystem::path& cache_directory) {
  const std::string key = cache_key(path, options);
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(key)));
  const std::filesystem::path directory = !cache_directory.empty()
                                              ? cache_directory
                                              : (path.has_parent_path() ? path.parent_path() : ".");
  std::string name(".");  // appended piecewise: GCC 12 misreports "." + string (-Wrestrict)
  name.append(path.filename().string()).append(".").append(hash).append(".spcache");
  return directory / name;
}

}  // namespace detail

Dataset read_csv_cached(const std::filesystem::path& path, const CsvOptions& options,
                        const std::filesystem::path& cache_directory) {
  // The cache format holds at least one target per row; standard input has no size and
  // modification time to key a cache with.
  if (options.no_target || detail::is_standard_input(path)) return read_csv(path, options);
  const std::string key = cache_key(path, options);
  const std::filesystem::path cache = detail::csv_cache_path(path, options, cache_directory);
  Dataset data;
  if (load(cache, key, options.missing, data)) return data;
  data = read_csv(path, options);
  if (!cache_directory.empty()) std::filesystem::create_directories(cache_directory);
  store(cache, key, data);
  return data;
}

}  // namespace shardprop
