// CSV parse throughput: shardprop::read_csv at 1 and 2 threads (BM_ReadCsv) on a Fashion-MNIST-like
// (785 integer columns) and a HIGGS-like (29 float columns) file of at least 200 MB, beside the I/O
// limit (BM_ReadSyscall: read() into a buffer; BM_MmapTouch: mmap and touch every page) and a bare
// fast_float loop over the mapped bytes with no validation (BM_BareFromChars, one thread). The
// files are read from the page cache: this leaves out the disk. BM_ReadCsvCategorical reads a
// file of 12 float columns, 3 columns of integer codes (3, 5 and 7 distinct) and a 0/1
// target three times: with the codes as numbers (one_hot:0), one-hot encoded with the
// vocabularies fitted by the read (one_hot:1, as training does), and with them given (one_hot:2,
// as evaluate, predict and streams do). BM_Impute fits and applies mean or median imputation to
// that file's rows with 2% of the cells missing.
//
// Compressed input: the same files as gzip (zlib level 6) and zstd (level 3), written next to
// them on first use, read by read_csv (BM_ReadCsvCompressed) and by one CsvStream pass
// (BM_StreamCsv, plain too), beside pure decompression into a discarded buffer (BM_Decompress:
// what `zcat FILE > /dev/null` does; gzip with zlib's inflate, as zcat, and with ISA-L's igzip, as
// shardprop). Their bytes_per_second is of the uncompressed text; the
// counter compressed_MB is the compressed input's rate.
//
// A file is made by shardprop_make_csv only when a benchmark that reads it runs (never for
// --benchmark_list_tests), in a temporary directory removed at exit, or, when
// $SHARDPROP_BENCH_DATA names a directory, there, where it is kept and reused by later runs.
// SHARDPROP_BENCH_CSV_MB sets their size (default 256; 200 or more for stable rates). Rates are
// counters: bytes/s, MB/s (10⁶ bytes) and rows/s.
#include <benchmark/benchmark.h>
#include <fast_float/fast_float.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <tbb/task_arena.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <memory>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "shardprop/data_stream.hpp"
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
  fs::path path;     // set once the data directory exists
  std::uint64_t bytes = 0;
  std::int64_t rows = 0;  // data rows, header excluded
  int columns = 0;
  bool ready = false;  // generated (or found) and measured
  std::string error;   // why it could not be made
  // The compressed copies, made on first use (index: Format).
  fs::path compressed_path[2];
  std::uint64_t compressed_bytes[2] = {0, 0};
  std::string compressed_error[2];
};

enum Format { kGzip = 0, kZstd = 1 };
const char* const kFormatNames[2] = {"gzip", "zstd"};

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

bool ensure_ready(benchmark::State& state, CsvFile& file);

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
void BM_ReadSyscall(benchmark::State& state, CsvFile* file) {
  if (!ensure_ready(state, *file)) return;
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
void BM_MmapTouch(benchmark::State& state, CsvFile* file) {
  if (!ensure_ready(state, *file)) return;
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
void BM_BareFromChars(benchmark::State& state, CsvFile* file) {
  if (!ensure_ready(state, *file)) return;
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
void BM_ReadCsv(benchmark::State& state, CsvFile* file) {
  if (!ensure_ready(state, *file)) return;
  tbb::task_arena arena(static_cast<int>(state.range(0)));
  arena.initialize();
  const shardprop::CsvOptions options;
  // One untimed read first, as in BM_ReadCsvCategorical.
  arena.execute([&] { benchmark::DoNotOptimize(shardprop::read_csv(file->path, options).rows); });
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

// The categorical file: 12 floats, 3 integer codes with 3, 5 and 7 values, a 0/1 target;
// written to a temporary name and renamed.
void generate_categorical(const CsvFile& file, int megabytes) {
  const fs::path temporary = file.path.string() + ".tmp";
  std::FILE* out = std::fopen(temporary.c_str(), "w");
  if (out == nullptr) throw system_error("cannot write " + temporary.string());
  std::fputs("f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,f10,f11,small,medium,large,y\n", out);
  std::uint64_t state = kSeed;
  auto next = [&] {  // splitmix64
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  const std::uint64_t target = static_cast<std::uint64_t>(megabytes) << 20;
  std::uint64_t written = 0;
  char line[512];
  while (written < target) {
    int n = 0;
    for (int c = 0; c < 12; ++c) {
      n += std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), "%.6f,",
                         static_cast<double>(next() % 2000000) / 1e6 - 1.0);
    }
    n += std::snprintf(line + n, sizeof line - static_cast<std::size_t>(n), "%d,%d,%d,%d\n",
                       static_cast<int>(next() % 3), static_cast<int>(next() % 5),
                       static_cast<int>(next() % 7), static_cast<int>(next() % 2));
    std::fwrite(line, 1, static_cast<std::size_t>(n), out);
    written += static_cast<std::uint64_t>(n);
  }
  if (std::fclose(out) != 0) throw system_error("cannot write " + temporary.string());
  fs::rename(temporary, file.path);
}

// read_csv of the categorical file at state.range(0) threads, its code columns read as numbers
// (state.range(1) == 0) or one-hot encoded (1): what the encoding costs over plain parsing.
void BM_ReadCsvCategorical(benchmark::State& state, CsvFile* file) {
  if (!ensure_ready(state, *file)) return;
  tbb::task_arena arena(static_cast<int>(state.range(0)));
  arena.initialize();
  shardprop::CsvOptions options;
  if (state.range(1) != 0) options.categorical = {"small", "medium", "large"};
  // One untimed read first, in every mode: the first read in a process also pays for faulting
  // in the allocator's and TBB's memory, about twice a read's time, and a benchmark whose first
  // iteration runs that long is given one iteration per repetition. For one_hot:2 it gives the
  // vocabularies, as evaluate, predict and streams have them from the model.
  arena.execute([&] {
    const shardprop::Dataset first = shardprop::read_csv(file->path, options);
    if (state.range(1) == 2) options.categories = first.categorical;
  });
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

// Imputation::fit and apply on the categorical file read into memory (codes as numbers), with
// every 50th cell of its feature rows made missing (NaN, as the read leaves a missing cell):
// mean (state.range(0) == 0) or median (1) at 2 threads. Rates are of the file's bytes, to be
// set beside BM_ReadCsvCategorical's one_hot:0, the parse of the same file.
void BM_Impute(benchmark::State& state, CsvFile* file) {
  if (!ensure_ready(state, *file)) return;
  tbb::task_arena arena(2);
  arena.initialize();
  shardprop::Dataset data;
  arena.execute([&] { data = shardprop::read_csv(file->path); });
  for (std::size_t i = 0; i < data.features.size(); i += 50) {
    data.features[i] = std::numeric_limits<float>::quiet_NaN();
  }
  const shardprop::MissingPolicy policy =
      state.range(0) == 0 ? shardprop::MissingPolicy::mean : shardprop::MissingPolicy::median;
  shardprop::Dataset filled;
  for (auto _ : state) {
    state.PauseTiming();
    filled = data;
    state.ResumeTiming();
    arena.execute([&] {
      const shardprop::Imputation imputation = shardprop::Imputation::fit(filled, policy);
      imputation.apply(filled);
    });
    benchmark::DoNotOptimize(filled.features.data());
  }
  set_rates(state, *file);
}

// Writes `in`'s bytes compressed to `out` in 1 MB pieces (gzip: one member; zstd: one frame).
void compress_file(const fs::path& in, const fs::path& out, Format format) {
  const File source(in);
  const fs::path partial = out.string() + ".partial";
  const int sink = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (sink < 0) throw system_error("cannot write " + partial.string());
  std::vector<char> input(std::size_t{1} << 20);
  std::vector<char> output(std::size_t{4} << 20);
  auto write_all = [&](const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(sink, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw system_error("cannot write " + partial.string());
      data += n;
      size -= static_cast<std::size_t>(n);
    }
  };
  z_stream z{};
  ZSTD_CCtx* zstd = nullptr;
  if (format == kGzip) {
    if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw std::runtime_error("deflateInit2 failed");
    }
  } else {
    zstd = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(zstd, ZSTD_c_compressionLevel, 3);
  }
  for (bool end = false; !end;) {
    const ssize_t n = ::read(source.fd(), input.data(), input.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw system_error("cannot read " + in.string());
    end = n == 0;
    if (format == kGzip) {
      z.next_in = reinterpret_cast<Bytef*>(input.data());
      z.avail_in = static_cast<uInt>(n);
      do {
        z.next_out = reinterpret_cast<Bytef*>(output.data());
        z.avail_out = static_cast<uInt>(output.size());
        deflate(&z, end ? Z_FINISH : Z_NO_FLUSH);
        write_all(output.data(), output.size() - z.avail_out);
      } while (z.avail_out == 0);
    } else {
      ZSTD_inBuffer source_buffer{input.data(), static_cast<std::size_t>(n), 0};
      for (;;) {
        ZSTD_outBuffer target{output.data(), output.size(), 0};
        const std::size_t left =
            ZSTD_compressStream2(zstd, &target, &source_buffer, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left)) throw std::runtime_error(ZSTD_getErrorName(left));
        write_all(output.data(), target.pos);
        if (end ? left == 0 : source_buffer.pos == source_buffer.size) break;
      }
    }
  }
  if (format == kGzip) deflateEnd(&z);
  ZSTD_freeCCtx(zstd);
  ::close(sink);
  fs::rename(partial, out);
}

bool ensure_ready(benchmark::State& state, CsvFile& file);

// The compressed copy of a ready file, made if missing.
bool ensure_compressed(benchmark::State& state, CsvFile& file, Format format) {
  if (!ensure_ready(state, file)) return false;
  std::string& error = file.compressed_error[format];
  if (file.compressed_bytes[format] == 0 && error.empty()) {
    try {
      const fs::path path = file.path.string() + (format == kGzip ? ".gz" : ".zst");
      if (!fs::exists(path)) compress_file(file.path, path, format);
      file.compressed_path[format] = path;
      file.compressed_bytes[format] = fs::file_size(path);
      std::vector<char> warm(file.compressed_bytes[format]);  // into the page cache
      read_into(path, warm);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  if (error.empty()) return true;
  state.SkipWithError(error.c_str());
  for (auto _ : state) {
  }
  return false;
}

// Uncompressed bytes/s as bytes_per_second (and the file's usual counters); compressed MB/s.
void set_compressed_rates(benchmark::State& state, const CsvFile& file, Format format) {
  set_rates(state, file);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(file.bytes));
  state.counters["compressed_MB"] =
      benchmark::Counter(static_cast<double>(file.compressed_bytes[format]) / 1e6,
                         benchmark::Counter::kIsIterationInvariantRate);
}

// read_csv of the compressed copy in an arena of state.range(1) threads; state.range(0) is
// the Format.
void BM_ReadCsvCompressed(benchmark::State& state, CsvFile* file) {
  const auto format = static_cast<Format>(state.range(0));
  if (!ensure_compressed(state, *file, format)) return;
  tbb::task_arena arena(static_cast<int>(state.range(1)));
  arena.initialize();
  const shardprop::CsvOptions options;
  for (auto _ : state) {
    try {
      std::int64_t rows = 0;
      arena.execute([&] {
        const shardprop::Dataset data = shardprop::read_csv(file->compressed_path[format], options);
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
  set_compressed_rates(state, *file, format);
}

// One CsvStream pass (64 MB blocks, each parsed in parallel) over the plain file (state.range(0)
// == 2) or a compressed copy, in an arena of state.range(1) threads: the decompression thread
// works ahead while a block is parsed.
void BM_StreamCsv(benchmark::State& state, CsvFile* file) {
  const bool plain = state.range(0) == 2;
  const auto format = static_cast<Format>(plain ? 0 : state.range(0));
  if (plain ? !ensure_ready(state, *file) : !ensure_compressed(state, *file, format)) return;
  tbb::task_arena arena(static_cast<int>(state.range(1)));
  arena.initialize();
  shardprop::CsvOptions options;
  options.target_kind = shardprop::TargetKind::numeric;
  const fs::path path = plain ? file->path : file->compressed_path[format];
  for (auto _ : state) {
    try {
      std::int64_t rows = 0;
      arena.execute([&] {
        shardprop::CsvStream stream(path, options);
        shardprop::Dataset chunk;
        while (stream.next(chunk)) rows += chunk.rows;
        benchmark::DoNotOptimize(chunk.features.data());
      });
      if (rows != file->rows) {
        state.SkipWithError("the stream returned the wrong number of rows");
        break;
      }
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      break;
    }
  }
  if (plain) {
    set_rates(state, *file);
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                            static_cast<std::int64_t>(file->bytes));
  } else {
    set_compressed_rates(state, *file, format);
  }
}

// Decompression alone, one thread: read() the compressed copy in 256 KB pieces and inflate
// (zlib's, or igzip's with igzip:1; ZSTD_decompressStream) into a 1 MB buffer that is thrown
// away, as `zcat FILE > /dev/null`.
void BM_Decompress(benchmark::State& state, CsvFile* file) {
  const auto format = static_cast<Format>(state.range(0));
  const bool igzip = state.range(1) != 0;
  if (!ensure_compressed(state, *file, format)) return;
  std::vector<char> input(std::size_t{256} << 10);
  std::vector<char> output(std::size_t{1} << 20);
  const auto isal = std::make_unique<inflate_state>();
  for (auto _ : state) {
    const File source(file->compressed_path[format]);
    std::uint64_t made = 0;
    z_stream z{};
    ZSTD_DStream* zstd = nullptr;
    if (format == kGzip && igzip) {
      isal_inflate_init(isal.get());
      isal->crc_flag = ISAL_GZIP;
    } else if (format == kGzip) {
      inflateInit2(&z, 16 + MAX_WBITS);
    } else {
      zstd = ZSTD_createDStream();
    }
    for (;;) {
      const ssize_t n = ::read(source.fd(), input.data(), input.size());
      if (n <= 0) break;
      if (format == kGzip && igzip) {  // one member: the benchmark's files have one
        isal->next_in = reinterpret_cast<std::uint8_t*>(input.data());
        isal->avail_in = static_cast<std::uint32_t>(n);
        while (isal->avail_in > 0 && isal->block_state != ISAL_BLOCK_FINISH) {
          isal->next_out = reinterpret_cast<std::uint8_t*>(output.data());
          isal->avail_out = static_cast<std::uint32_t>(output.size());
          if (isal_inflate(isal.get()) < 0) break;
          made += output.size() - isal->avail_out;
        }
        // The last output of a member may come without more input.
        while (isal->block_state != ISAL_BLOCK_FINISH && isal->avail_in == 0 &&
               isal->avail_out == 0) {
          isal->next_out = reinterpret_cast<std::uint8_t*>(output.data());
          isal->avail_out = static_cast<std::uint32_t>(output.size());
          if (isal_inflate(isal.get()) < 0) break;
          made += output.size() - isal->avail_out;
        }
      } else if (format == kGzip) {
        z.next_in = reinterpret_cast<Bytef*>(input.data());
        z.avail_in = static_cast<uInt>(n);
        while (z.avail_in > 0) {
          z.next_out = reinterpret_cast<Bytef*>(output.data());
          z.avail_out = static_cast<uInt>(output.size());
          const int status = inflate(&z, Z_NO_FLUSH);
          made += output.size() - z.avail_out;
          if (status == Z_STREAM_END) inflateReset(&z);
          if (status != Z_OK && status != Z_STREAM_END) break;
        }
      } else {
        ZSTD_inBuffer in{input.data(), static_cast<std::size_t>(n), 0};
        while (in.pos < in.size) {
          ZSTD_outBuffer out{output.data(), output.size(), 0};
          ZSTD_decompressStream(zstd, &out, &in);
          made += out.pos;
        }
      }
      benchmark::DoNotOptimize(output.data());
    }
    if (format == kGzip && !igzip) inflateEnd(&z);
    ZSTD_freeDStream(zstd);
    if (made != file->bytes) {
      state.SkipWithError("decompressed size differs from the file's");
      break;
    }
  }
  set_compressed_rates(state, *file, format);
}

// Runs shardprop_make_csv to write file.path (it writes a temporary file and renames it).
void generate(const CsvFile& file, int megabytes) {
  if (file.like == "categorical") {
    generate_categorical(file, megabytes);
    return;
  }
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

// Where the files go: $SHARDPROP_BENCH_DATA (kept), or a temporary directory made on first
// use and removed at exit.
class DataDirectory {
 public:
  DataDirectory() = default;
  DataDirectory(const DataDirectory&) = delete;
  DataDirectory& operator=(const DataDirectory&) = delete;
  ~DataDirectory() {
    if (!temporary_) return;
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }

  const fs::path& get() {
    if (!path_.empty()) return path_;
    const std::string setting = environment_value("SHARDPROP_BENCH_DATA");
    if (!setting.empty()) {
      path_ = setting;
      fs::create_directories(path_);
      return path_;
    }
    const std::string tmp = environment_value("TMPDIR");
    std::string pattern = (tmp.empty() ? std::string("/tmp") : tmp) + "/shardprop-csv-bench.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw system_error("cannot make " + pattern);
    path_ = pattern;
    temporary_ = true;
    return path_;
  }

 private:
  fs::path path_;
  bool temporary_ = false;
};

DataDirectory& data_directory() {
  static DataDirectory directory;
  return directory;
}

int file_megabytes() {
  const std::string setting = environment_value("SHARDPROP_BENCH_CSV_MB");
  if (setting.empty()) return kDefaultMegabytes;
  try {
    const int megabytes = std::stoi(setting);
    if (megabytes > 0) return megabytes;
  } catch (const std::exception&) {
  }
  throw std::runtime_error("SHARDPROP_BENCH_CSV_MB must be a positive number of MB, got '" +
                           setting + "'");
}

// Makes the file if it is missing, then measures it; the first failure is kept.
void prepare(CsvFile& file) {
  if (file.ready || !file.error.empty()) return;
  try {
    const int megabytes = file_megabytes();
    file.path = data_directory().get() / (file.like + "-like-" + std::to_string(megabytes) +
                                          "MB-seed" + std::to_string(kSeed) + ".csv");
    if (!fs::exists(file.path)) generate(file, megabytes);
    measure(file);
    file.ready = true;
  } catch (const std::exception& e) {
    file.error = e.what();
  }
}

bool ensure_ready(benchmark::State& state, CsvFile& file) {
  prepare(file);
  if (file.ready) return true;
  state.SkipWithError(file.error.c_str());
  for (auto _ : state) {  // a skipped benchmark still enters the loop once, doing nothing
  }
  return false;
}

std::vector<CsvFile>& csv_files() {
  static std::vector<CsvFile> files = [] {
    std::vector<CsvFile> made(3);
    made[0].name = "fashion_mnist_like";
    made[0].like = "fashion-mnist";
    made[1].name = "higgs_like";
    made[1].like = "higgs";
    made[2].name = "categorical_like";
    made[2].like = "categorical";
    return made;
  }();
  return files;
}

// The names Google Benchmark gives the runs registered below, to tell which files the filter
// selects (a file is still made on first use if this guess misses).
std::vector<std::string> run_names(const CsvFile& file) {
  const std::string suffix = "/" + file.name;
  if (file.like == "categorical") {
    return {"BM_ReadCsvCategorical" + suffix + "/threads:1/one_hot:0/real_time",
            "BM_ReadCsvCategorical" + suffix + "/threads:1/one_hot:1/real_time",
            "BM_ReadCsvCategorical" + suffix + "/threads:2/one_hot:0/real_time",
            "BM_ReadCsvCategorical" + suffix + "/threads:2/one_hot:1/real_time",
            "BM_ReadCsvCategorical" + suffix + "/threads:1/one_hot:2/real_time",
            "BM_ReadCsvCategorical" + suffix + "/threads:2/one_hot:2/real_time",
            "BM_Impute" + suffix + "/median:0/real_time",
            "BM_Impute" + suffix + "/median:1/real_time"};
  }
  return {"BM_ReadSyscall" + suffix + "/real_time",
          "BM_MmapTouch" + suffix + "/real_time",
          "BM_BareFromChars" + suffix + "/real_time",
          "BM_ReadCsv" + suffix + "/threads:1/real_time",
          "BM_ReadCsv" + suffix + "/threads:2/real_time",
          "BM_ReadCsvCompressed" + suffix + "/format:0/threads:2/real_time",
          "BM_ReadCsvCompressed" + suffix + "/format:1/threads:2/real_time",
          "BM_StreamCsv" + suffix + "/format:2/threads:2/real_time",
          "BM_StreamCsv" + suffix + "/format:0/threads:2/real_time",
          "BM_StreamCsv" + suffix + "/format:1/threads:2/real_time",
          "BM_Decompress" + suffix + "/format:0/igzip:0/real_time",
          "BM_Decompress" + suffix + "/format:0/igzip:1/real_time",
          "BM_Decompress" + suffix + "/format:1/igzip:0/real_time"};
}

bool selected(const CsvFile& file, std::string filter) {
  if (filter.empty() || filter == "all") filter = ".";
  const bool negative = filter.front() == '-';
  if (negative) filter.erase(0, 1);
  try {
    const std::regex pattern(filter, std::regex::extended);
    for (const std::string& name : run_names(file)) {
      if (std::regex_search(name, pattern) != negative) return true;
    }
    return false;
  } catch (const std::regex_error&) {
    return false;  // Google Benchmark reports the bad filter itself
  }
}

void register_benchmarks(std::vector<CsvFile>& files) {
  for (CsvFile& file : files) {
    CsvFile* f = &file;
    if (file.like == "categorical") {
      benchmark::RegisterBenchmark(("BM_ReadCsvCategorical/" + file.name).c_str(),
                                   BM_ReadCsvCategorical, f)
          ->ArgNames({"threads", "one_hot"})
          ->ArgsProduct({{1, 2}, {0, 1, 2}})
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("BM_Impute/" + file.name).c_str(), BM_Impute, f)
          ->ArgNames({"median"})
          ->DenseRange(0, 1)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      continue;
    }
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
    // format: 0 gzip, 1 zstd, 2 plain (streams only).
    benchmark::RegisterBenchmark(("BM_ReadCsvCompressed/" + file.name).c_str(),
                                 BM_ReadCsvCompressed, f)
        ->ArgNames({"format", "threads"})
        ->Args({kGzip, 2})
        ->Args({kZstd, 2})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_StreamCsv/" + file.name).c_str(), BM_StreamCsv, f)
        ->ArgNames({"format", "threads"})
        ->Args({2, 2})
        ->Args({kGzip, 2})
        ->Args({kZstd, 2})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_Decompress/" + file.name).c_str(), BM_Decompress, f)
        ->ArgNames({"format", "igzip"})
        ->Args({kGzip, 0})
        ->Args({kGzip, 1})
        ->Args({kZstd, 0})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Initialize removes the flags it knows; listing the benchmarks must not make their data.
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--benchmark_list_tests" || arg == "--benchmark_list_tests=true" ||
        arg == "--benchmark_list_tests=1") {
      listing = true;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    return 1;
  }
  std::vector<CsvFile>& files = csv_files();  // the benchmarks hold pointers into it
  benchmark::AddCustomContext("shardprop_version", shardprop::version());
  if (!listing) {
    // The files of the benchmarks that will run are made now, so the context can describe them.
    for (CsvFile& file : files) {
      if (!selected(file, benchmark::GetBenchmarkFilter())) continue;
      prepare(file);
      if (!file.ready) {
        std::fprintf(stderr, "shardprop_csv_bench: error: %s\n", file.error.c_str());
        return 1;
      }
      benchmark::AddCustomContext("csv_" + file.name, file.path.string());
      benchmark::AddCustomContext("csv_" + file.name + "_bytes", std::to_string(file.bytes));
      benchmark::AddCustomContext("csv_" + file.name + "_rows", std::to_string(file.rows));
      benchmark::AddCustomContext("csv_" + file.name + "_columns", std::to_string(file.columns));
    }
  }
  register_benchmarks(files);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
