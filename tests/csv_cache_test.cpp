// The parsed-CSV cache: used when its key matches, rebuilt when the CSV, the options or the
// cache file itself change.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/csv_cache.hpp"
#include "shardprop/dataset.hpp"

using namespace shardprop;
namespace fs = std::filesystem;

namespace {

struct CacheDir {
  fs::path path;
  CacheDir() {
    path = fs::temp_directory_path() /
           ("shardprop_cache_test_" + std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~CacheDir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool same(const Dataset& a, const Dataset& b) {
  return a.rows == b.rows && a.feature_count == b.feature_count &&
         a.target_width == b.target_width && a.features == b.features && a.targets == b.targets &&
         a.feature_names == b.feature_names && a.target_names == b.target_names &&
         a.class_names == b.class_names;
}

int cache_files(const fs::path& dir) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    n += entry.path().extension() == ".spcache" ? 1 : 0;
  }
  return n;
}

}  // namespace

TEST_CASE("the CSV cache is written once and then read instead of parsing", "[csv][cache]") {
  CacheDir dir;
  const fs::path csv = dir.path / "data.csv";
  write(csv, "a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n");
  CsvOptions options;
  options.target_kind = TargetKind::classes;
  const Dataset parsed = read_csv(csv, options);
  const Dataset first = read_csv_cached(csv, options);
  CHECK(same(first, parsed));
  const fs::path cache = detail::csv_cache_path(csv, options);
  REQUIRE(fs::exists(cache));
  CHECK(cache.parent_path() == csv.parent_path());
  CHECK(cache_files(dir.path) == 1);

  SECTION("a second call reads the cache file") {
    // Change the first feature value inside the cache: only a reader of the cache can see it.
    // The floats end the file: 3 rows of 2 features, then 3 targets.
    std::string bytes = read_bytes(cache);
    const std::size_t at = bytes.size() - (3 * 2 + 3) * sizeof(float);
    float value = 0.0f;
    std::memcpy(&value, bytes.data() + at, 4);
    REQUIRE(value == 1.0f);
    const float changed = 42.0f;
    std::memcpy(bytes.data() + at, &changed, 4);
    write(cache, bytes);
    const Dataset second = read_csv_cached(csv, options);
    CHECK(second.features[0] == 42.0f);
  }
  SECTION("editing the CSV makes a new cache with the new data") {
    write(csv, "a,b,label\n1,2,cat\n3,4,dog\n5,6,bird\n7,8,cat\n");
    const Dataset edited = read_csv_cached(csv, options);
    CHECK(edited.rows == 4);
    CHECK(edited.class_names == std::vector<std::string>{"bird", "cat", "dog"});
    CHECK(same(edited, read_csv(csv, options)));
  }
  SECTION("other parse options use another cache file") {
    CsvOptions numeric_b = options;
    numeric_b.targets = {"b"};
    numeric_b.ignore = {"label"};
    numeric_b.target_kind = TargetKind::numeric;
    CHECK(detail::csv_cache_path(csv, numeric_b) != cache);
    const Dataset other = read_csv_cached(csv, numeric_b);
    CHECK(other.targets == std::vector<float>{2, 4, 6});
    CHECK(cache_files(dir.path) == 2);
  }
  SECTION("a damaged cache file is rebuilt, not trusted") {
    const std::string good = read_bytes(cache);
    const std::string damaged_versions[] = {
        good.substr(0, good.size() - 3),            // truncated
        "XPCACHE1" + good.substr(8),                // wrong magic
        good.substr(0, 16) + std::string(40, '{'),  // header not JSON
        std::string(),                              // empty
    };
    for (const std::string& damaged : damaged_versions) {
      write(cache, damaged);
      CHECK(same(read_csv_cached(csv, options), parsed));
      CHECK(read_bytes(cache) == good);
    }
  }
  SECTION("a cache directory keeps the cache away from the CSV") {
    const fs::path elsewhere = dir.path / "cache" / "nested";
    const Dataset cached = read_csv_cached(csv, options, elsewhere);
    CHECK(same(cached, parsed));
    CHECK(cache_files(elsewhere) == 1);
    CHECK(detail::csv_cache_path(csv, options, elsewhere).parent_path() == elsewhere);
  }
  // No temporary files left behind by the atomic writes.
  for (const auto& entry : fs::recursive_directory_iterator(dir.path)) {
    CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);
  }
}

TEST_CASE("a CSV error is reported through the cache and no cache is written", "[csv][cache]") {
  CacheDir dir;
  const fs::path csv = dir.path / "bad.csv";
  write(csv, "a,b,c\n1,2,3\n3,x,4\n");  // 'x' in feature column b
  CHECK_THROWS(read_csv_cached(csv));
  CHECK(cache_files(dir.path) == 0);
  CHECK_THROWS(read_csv_cached(dir.path / "missing.csv"));
}
