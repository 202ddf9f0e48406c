// CSV parse throughput: shardprop::read_csv at 1 and 2 threads (BM_ReadCsv) on a Fashion-MNIST-like
// (785 integer columns) and a HIGGS-like (29 float columns) file of at least 200 MB, beside the I/O
// limit (BM_ReadSyscall: read() into a buffer; BM_MmapTouch: mmap and touch every page) and a bare
// fast_float loop over the mapped bytes with no validation (BM_BareFromChars, one thread). The
// files are read from the page cache: this leaves out the disk.
//
// The files are made by shardprop_make_csv into $SHARDPROP_BENCH_DATA (default: csv_data/ in this
// build directory) when missing; SHARDPROP_BENCH_CSV_MB sets their size (default 256, minimum
// for the figures 200). Rates are counters: bytes/s, MB/s (10⁶ bytes) and rows/s.
#include <benchmark/benchmark.h>
#include <fast_float/fast_float.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/version.hpp"

extern char** environ;  // NOLINT: POSIX, for posix_spawn

namespace {

namespace fs = std::filesystem;

constexpr int kDefaultMegabytes = 256;
constexpr std::uint64_t kSeed = 1;

struct CsvFile {
  std::string name;  // benchmark name component
  std::string like;  // shardprop_make_csv --like preset
  fs::path path;
  std::uint64_t bytes = 0;
  std::int64_t rows = 0;  // data rows, header excluded
  int columns = 0;
};

std::string environment_value(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

std::runtime_error system_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

// An open file descriptor, closed on scope exit.
class File {
 public:
  explicit File(const fs::path& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw system_error("cannot open " + path.string());
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File() { ::close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A read-only private mapping of a whole file, unmapped on scope exit.
class Mapping {
 public:
  Mapping(const File& file, std::size_t size) : size_(size) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.fd(), 0);
    if (p == MAP_FAILED) throw system_error("mmap failed");
    ::madvise(p, size, MADV_SEQUENTIAL);
    data_ = static_cast<const char*>(p);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { ::munmap(const_cast<char*>(data_), size_); }
  const char* data() const { return data_; }
  const char* end() const { return data_ + size_; }

 private:
  const char* data_ = nullptr;
  std::size_t size_;
};

// Reads the whole file into buffer (sized to the file) with read() calls; returns bytes read.
std::size_t read_into(const fs::path& path, std::vector<char>& buffer) {
  const File file(path);
  std::size_t done = 0;
  for (;;) {
    const std::size_t want = std::min<std::size_t>(buffer.size() - done, std::size_t{1} << 30);
    if (want == 0) return done;
    const ssize_t n = ::read(file.fd(), buffer.data() + done, want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw system_error("read failed on " + path.string());
    if (n == 0) return done;
    done += static_cast<std::size_t>(n);
  }
}

void set_rates(benchmark::State& state, const CsvFile& file) {
  using benchmark::Counter;
  const auto bytes = static_cast<double>(file.bytes);
  state.counters["bytes"] = Counter(bytes, Counter::kIsIterationInvariantRate);
  state.counters["MB"] = Counter(bytes / 1e6, Counter::kIsIterationInvariantRate);
  state.counters["rows"] =
      Counter(static_cast<double>(file.rows), Counter::kIsIterationInvariantRate);
}

// The I/O limit of a reader that copies: read() the file (from the page cache) into a buffer
// that is allocated and faulted in once, outside the timed loop.
void BM_ReadSyscall(benchmark::State& state, const CsvFile* file) {
  std::vector<char> buffer(file->bytes);
  for (auto _ : state) {
    const std::size_t n = read_into(file->path, buffer);
    if (n != file->bytes) {
      state.SkipWithError("short read");
      break;
    }
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, *file);
}

// The I/O limit of a reader that maps: mmap the file and read one byte of every page.
void BM_MmapTouch(benchmark::State& state, const CsvFile* file) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  for (auto _ : state) {
    const File f(file->path);
    const Mapping map(f, file->bytes);
    unsigned sum = 0;
    for (std::size_t i = 0; i < file->bytes; i += page) {
      sum += static_cast<unsigned char>(map.data()[i]);
    }
    benchmark::DoNotOptimize(sum);
  }
  set_rates(state, *file);
}

// The bare reference: map the file, skip the header line, then for each field scan to the next
// delimiter or newline and parse it with fast_float into a preallocated float array. No checks
// of any kind (field counts, empty fields, parse errors, quotes, CR).
void BM_BareFromChars(benchmark::State& state, const CsvFile* file) {
  const auto fields =
      static_cast<std::size_t>(file->rows) * static_cast<std::size_t>(file->columns);
  std::vector<float> values(fields);
  for (auto _ : state) {
    const File f(file->path);
    const Mapping map(f, file->bytes);
    const char* p = static_cast<const char*>(std::memchr(map.data(), '\n', file->bytes)) + 1;
    const char* const end = map.end();
    float* out = values.data();
    while (p < end) {
      const char* field_end = p;
      while (field_end < end && *field_end != ',' && *field_end != '\n') ++field_end;
      fast_float::from_chars(p, field_end, *out++);
      p = field_end + 1;
    }
    if (out != values.data() + fields) {
      state.SkipWithError("field count differs from rows x columns");
      break;
    }
    benchmark::DoNotOptimize(values.data());
    benchmark::ClobberMemory();
  }
  set_rates(state, *file);
}

// shardprop::read_csv with default options (header, target = the last column), in an arena of
// state.range(0) threads; the dataset's allocation and release are inside the timed loop.
void BM_ReadCsv(benchmark::State& state, const CsvFile* file) {
  tbb::task_arena arena(static_cast<int>(state.range(0)));
  arena.initialize();
  const shardprop::CsvOptions options;
  for (auto _ : state) {
    try {
      std::int64_t rows = 0;
      arena.execute([&] {
        const shardprop::Dataset data = shardprop::read_csv(file->path, options);
        benchmark::DoNotOptimize(data.features.data());
        rows = data.rows;
      });
      if (rows != file->rows) {
        state.SkipWithError("read_csv returned the wrong number of rows");
        break;
      }
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      break;
    }
  }
  set_rates(state, *file);
}

// Runs shardprop_make_csv to write file.path (it writes a temporary file and renames it).
void generate(const CsvFile& file, int megabytes) {
  const std::string tool = environment_value("SHARDPROP_MAKE_CSV").empty()
                               ? std::string(SHARDPROP_MAKE_CSV)
                               : environment_value("SHARDPROP_MAKE_CSV");
  std::vector<std::string> args = {tool,
                                   "--like",
                                   file.like,
                                   "--size-mb",
                                   std::to_string(megabytes),
                                   "--seed",
                                   std::to_string(kSeed),
                                   "--out",
                                   file.path.string()};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int error = ::posix_spawn(&pid, tool.c_str(), nullptr, nullptr, argv.data(), environ);
  if (error != 0) {
    throw std::runtime_error("cannot run " + tool + ": " + std::strerror(error));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw system_error("waitpid failed");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error(tool + " failed for " + file.path.string());
  }
}

// Fills in size, rows and columns; reading the whole file also warms the page cache.
void measure(CsvFile& file) {
  file.bytes = fs::file_size(file.path);
  std::vector<char> buffer(file.bytes);
  if (read_into(file.path, buffer) != file.bytes) {
    throw std::runtime_error("short read on " + file.path.string());
  }
  const auto header_end = std::find(buffer.begin(), buffer.end(), '\n');
  file.columns = static_cast<int>(std::count(buffer.begin(), header_end, ',')) + 1;
  file.rows = static_cast<std::int64_t>(std::count(buffer.begin(), buffer.end(), '\n')) - 1;
}

std::vector<CsvFile> prepare_files() {
  const std::string dir_setting = environment_value("SHARDPROP_BENCH_DATA");
  const fs::path dir =
      dir_setting.empty() ? fs::path(SHARDPROP_BENCH_DATA_DEFAULT) : fs::path(dir_setting);
  const std::string size_setting = environment_value("SHARDPROP_BENCH_CSV_MB");
  const int megabytes = size_setting.empty() ? kDefaultMegabytes : std::stoi(size_setting);
  fs::create_directories(dir);
  std::vector<CsvFile> files = {{"fashion_mnist_like", "fashion-mnist", {}, 0, 0, 0},
                                {"higgs_like", "higgs", {}, 0, 0, 0}};
  for (CsvFile& file : files) {
    file.path = dir / (file.like + "-like-" + std::to_string(megabytes) + "MB-seed" +
                       std::to_string(kSeed) + ".csv");
    if (!fs::exists(file.path)) generate(file, megabytes);
    measure(file);
  }
  return files;
}

void register_benchmarks(const std::vector<CsvFile>& files) {
  for (const CsvFile& file : files) {
    const CsvFile* f = &file;
    benchmark::RegisterBenchmark(("BM_ReadSyscall/" + file.name).c_str(), BM_ReadSyscall, f)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_MmapTouch/" + file.name).c_str(), BM_MmapTouch, f)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_BareFromChars/" + file.name).c_str(), BM_BareFromChars, f)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_ReadCsv/" + file.name).c_str(), BM_ReadCsv, f)
        ->ArgName("threads")
        ->Arg(1)
        ->Arg(2)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  static std::vector<CsvFile> files;  // the benchmarks hold pointers into it
  try {
    files = prepare_files();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shardprop_csv_bench: error: %s\n", e.what());
    return 1;
  }
  benchmark::AddCustomContext("shardprop_version", shardprop::version());
  for (const CsvFile& file : files) {
    benchmark::AddCustomContext("csv_" + file.name, file.path.string());
    benchmark::AddCustomContext("csv_" + file.name + "_bytes", std::to_string(file.bytes));
    benchmark::AddCustomContext("csv_" + file.name + "_rows", std::to_string(file.rows));
    benchmark::AddCustomContext("csv_" + file.name + "_columns", std::to_string(file.columns));
  }
  register_benchmarks(files);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
