// shardprop_make_csv: writes a large synthetic numeric CSV for the parsing benchmark and the
// streaming tests, deterministically from a seed, at 100-200 MB/s. Leaves out quoting, strings
// and malformed rows: every file it writes is valid input for shardprop::read_csv.
//
//   shardprop_make_csv --like fashion-mnist|higgs | --kind classification|regression
//                      [--columns N] [--features pixels|floats] [--classes K]
//                      [--label first|last] (--size-mb S | --rows R) [--seed 1] --out FILE.csv
//
// --columns counts every column, target included. The target column is "label" (class index
// 0..K-1) or "target" (a float), last by default. Features:
//   pixels  integers 0..255 like Fashion-MNIST: each row is a blob covering about half of a
//           square grid (zeros outside), about 2.8 bytes per field as in the real file.
//   floats  HIGGS-like values printed with 7 significant digits (%.7g), cycling through a
//           positive momentum-like, a pseudorapidity-like and an angle-like column.
// Classes and regression targets depend on the features (the data is learnable).
// --like fashion-mnist = pixels, 785 columns, 10 classes; --like higgs = floats, 29 columns,
// 2 classes. --size-mb S writes whole rows until the file has at least S·10⁶ bytes.
// The file is written to FILE.csv.tmp-PID and renamed into place when complete.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

enum class Kind { classification, regression };
enum class Features { pixels, floats };

struct Options {
  Kind kind = Kind::classification;
  Features features = Features::floats;
  int columns = 0;
  int classes = 2;
  bool label_first = false;
  double size_mb = 0.0;
  std::int64_t rows = 0;
  std::uint64_t seed = 1;
  std::string out;
};

// xoshiro256** seeded by splitmix64: fast, and the same stream on every platform.
class Random {
 public:
  explicit Random(std::uint64_t seed) {
    for (auto& word : state_) {
      seed += 0x9E3779B97F4A7C15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      word = z ^ (z >> 31);
    }
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n).
  int below(int n) { return static_cast<int>(uniform() * n); }
  double normal() {  // Box-Muller; the second value is dropped for simplicity
    const double u = 1.0 - uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * uniform());
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> state_{};
};

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr,
               "shardprop_make_csv: %s\n"
               "usage: shardprop_make_csv --like fashion-mnist|higgs | --kind "
               "classification|regression\n"
               "         [--columns N] [--features pixels|floats] [--classes K] "
               "[--label first|last]\n"
               "         (--size-mb S | --rows R) [--seed 1] --out FILE.csv\n",
               message.c_str());
  std::exit(2);
}

template <typename T>
T parse_number(std::string_view flag, std::string_view text) {
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) {
    usage_error(std::string(flag) + ": not a number: '" + std::string(text) + "'");
  }
  return value;
}

Options parse_options(int argc, char** argv) {
  Options o;
  bool kind_set = false;
  std::optional<int> columns;
  std::optional<int> classes;
  std::optional<Features> features;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      usage_error("writes a synthetic numeric CSV");
    }
    if (i + 1 >= argc) {
      usage_error(std::string(flag) + " needs a value");
    }
    const std::string_view value = argv[++i];
    if (flag == "--like") {
      kind_set = true;
      o.kind = Kind::classification;
      if (value == "fashion-mnist") {
        o.features = Features::pixels, o.columns = 785, o.classes = 10;
      } else if (value == "higgs") {
        o.features = Features::floats, o.columns = 29, o.classes = 2;
      } else {
        usage_error("--like: expected fashion-mnist or higgs");
      }
    } else if (flag == "--kind") {
      kind_set = true;
      if (value == "classification") {
        o.kind = Kind::classification;
      } else if (value == "regression") {
        o.kind = Kind::regression;
      } else {
        usage_error("--kind: expected classification or regression");
      }
    } else if (flag == "--features") {
      if (value != "pixels" && value != "floats") {
        usage_error("--features: expected pixels or floats");
      }
      features = value == "pixels" ? Features::pixels : Features::floats;
    } else if (flag == "--label") {
      if (value != "first" && value != "last") {
        usage_error("--label: expected first or last");
      }
      o.label_first = value == "first";
    } else if (flag == "--columns") {
      columns = parse_number<int>(flag, value);
    } else if (flag == "--classes") {
      classes = parse_number<int>(flag, value);
    } else if (flag == "--size-mb") {
      o.size_mb = parse_number<double>(flag, value);
    } else if (flag == "--rows") {
      o.rows = parse_number<std::int64_t>(flag, value);
    } else if (flag == "--seed") {
      o.seed = parse_number<std::uint64_t>(flag, value);
    } else if (flag == "--out") {
      o.out = value;
    } else {
      usage_error("unknown option '" + std::string(flag) + "'");
    }
  }
  // Explicit values override a --like preset whatever the order.
  o.columns = columns.value_or(o.columns);
  o.classes = classes.value_or(o.classes);
  o.features = features.value_or(o.features);
  if (!kind_set) usage_error("give --like or --kind");
  if (o.columns < 2) usage_error("--columns: at least 2 (one feature and the target)");
  if (o.kind == Kind::classification && (o.classes < 2 || o.classes > 1000000)) {
    usage_error("--classes: 2..1000000");
  }
  if ((o.size_mb > 0) == (o.rows > 0)) usage_error("give exactly one of --size-mb and --rows");
  if (o.size_mb < 0 || o.rows < 0) usage_error("--size-mb and --rows must be positive");
  if (o.out.empty()) usage_error("--out is required");
  return o;
}

// Appends with no bounds checks: the caller reserves enough room for a whole row first.
class RowWriter {
 public:
  explicit RowWriter(std::vector<char>& buffer) : buffer_(buffer) {}
  void integer(long value) { advance(std::to_chars(end(), capacity_end(), value).ptr); }
  // %.7g: about the precision of a float, as real datasets print them.
  void real(double value) {
    advance(std::to_chars(end(), capacity_end(), value, std::chars_format::general, 7).ptr);
  }
  void text(std::string_view s) {
    std::memcpy(end(), s.data(), s.size());
    size_ += s.size();
  }
  void character(char c) { buffer_[size_++] = c; }
  std::size_t size() const { return size_; }
  void clear() { size_ = 0; }

 private:
  char* end() { return buffer_.data() + size_; }
  char* capacity_end() { return buffer_.data() + buffer_.size(); }
  void advance(char* p) { size_ = static_cast<std::size_t>(p - buffer_.data()); }
  std::vector<char>& buffer_;
  std::size_t size_ = 0;
};

class Generator {
 public:
  explicit Generator(const Options& o)
      : o_(o), random_(o.seed), features_(o.columns - 1), values_(features_) {
    Random weights_random(o.seed ^ 0x5EEDULL);
    weights_.resize(features_);
    for (double& w : weights_) w = weights_random.normal() / std::sqrt(features_);
    grid_ = static_cast<int>(std::ceil(std::sqrt(features_)));
  }

  void header(RowWriter& w) const {
    const std::string_view target = o_.kind == Kind::classification ? "label" : "target";
    const char prefix = o_.features == Features::pixels ? 'p' : 'f';
    if (o_.label_first) w.text(target), w.character(',');
    for (int j = 0; j < features_; ++j) {
      w.character(prefix);
      w.integer(j);
      if (j + 1 < features_) w.character(',');
    }
    if (!o_.label_first) w.character(','), w.text(target);
    w.character('\n');
  }

  // The most bytes one row can take.
  std::size_t max_row_bytes() const { return 32 * (static_cast<std::size_t>(features_) + 1); }

  void row(RowWriter& w) {
    double score = 0.0;
    if (o_.features == Features::pixels) {
      score = pixel_row();
    } else {
      for (int j = 0; j < features_; ++j) {
        values_[j] = float_feature(j);
        score += weights_[j] * (j % 3 == 0 ? values_[j] - 1.0 : values_[j]);  // centred
      }
    }
    if (o_.label_first) target(w, score), w.character(',');
    for (int j = 0; j < features_; ++j) {
      if (o_.features == Features::pixels) {
        w.integer(std::lround(values_[j]));
      } else {
        w.real(values_[j]);
      }
      if (j + 1 < features_) w.character(',');
    }
    if (!o_.label_first) w.character(','), target(w, score);
    w.character('\n');
  }

 private:
  // A bright ellipse on a dark grid, its shape and brightness drawn from the class it will be
  // labelled with; returns the score the label comes from.
  double pixel_row() {
    const int label = random_.below(o_.classes);
    const double t = static_cast<double>(label) / o_.classes;  // 0..1
    const double rx = grid_ * (0.25 + 0.2 * t + 0.05 * random_.uniform());
    const double ry = grid_ * 0.23 / (0.25 + 0.2 * t) * (0.6 + 0.1 * random_.uniform());
    const double cx = grid_ * (0.45 + 0.1 * random_.uniform());
    const double cy = grid_ * (0.45 + 0.1 * random_.uniform());
    const double brightness = 80.0 + 170.0 * random_.uniform();
    for (int j = 0; j < features_; ++j) {
      const int column = j % grid_;
      const int row = j / grid_;
      const double dx = (column + 0.5 - cx) / rx;
      const double dy = (row + 0.5 - cy) / ry;
      const double r2 = dx * dx + dy * dy;
      double v = 0.0;
      if (r2 < 1.0) {
        v = brightness * (1.0 - 0.5 * r2) + 60.0 * (random_.uniform() - 0.5);
        v = std::clamp(v, 1.0, 255.0);
      }
      values_[j] = v;
    }
    return label + 0.5;
  }

  double float_feature(int j) {
    switch (j % 3) {
      case 0:  // a transverse momentum: positive, skewed, mean about 1
        return std::exp(0.55 * random_.normal() - 0.15);
      case 1:  // a pseudorapidity: bell-shaped, cut at ±2.5
        return std::clamp(1.0 * random_.normal(), -2.5, 2.5);
      default:  // an azimuthal angle, HIGGS-scaled
        return 1.74 * (2.0 * random_.uniform() - 1.0);
    }
  }

  void target(RowWriter& w, double score) {
    if (o_.kind == Kind::regression) {
      w.real(score + 0.1 * random_.normal());
    } else if (o_.features == Features::pixels) {
      w.integer(static_cast<long>(score));
    } else {
      // The score with noise, cut into classes of equal width around its spread (about ±2).
      const double z = (score + 0.5 * random_.normal() + 2.0) / 4.0;
      w.integer(std::clamp(static_cast<long>(z * o_.classes), 0L, long{o_.classes - 1}));
    }
  }

  const Options& o_;
  Random random_;
  int features_;
  int grid_ = 1;
  std::vector<double> values_;
  std::vector<double> weights_;
};

void write_all(int fd, const char* data, std::size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": write failed: " + std::strerror(errno));
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  const std::string tmp = o.out + ".tmp-" + std::to_string(::getpid());
  try {
    Generator generator(o);
    constexpr std::size_t kFlushBytes = std::size_t{4} << 20;
    std::vector<char> buffer(kFlushBytes + generator.max_row_bytes());
    RowWriter w(buffer);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      throw std::runtime_error(tmp + ": cannot create: " + std::strerror(errno));
    }
    const auto target_bytes = static_cast<std::uint64_t>(std::ceil(o.size_mb * 1e6));
    std::uint64_t written = 0;
    std::int64_t rows = 0;
    generator.header(w);
    for (;;) {
      const bool done = o.rows > 0 ? rows == o.rows : written + w.size() >= target_bytes;
      if (done || w.size() >= kFlushBytes) {
        write_all(fd, buffer.data(), w.size(), tmp);
        written += w.size();
        w.clear();
      }
      if (done) break;
      generator.row(w);
      ++rows;
    }
    if (::close(fd) != 0) {
      throw std::runtime_error(tmp + ": close failed: " + std::strerror(errno));
    }
    if (std::rename(tmp.c_str(), o.out.c_str()) != 0) {
      throw std::runtime_error(o.out + ": cannot rename into place: " + std::strerror(errno));
    }
    std::printf("shardprop_make_csv: wrote %s (%lld rows, %d columns, %llu bytes)\n", o.out.c_str(),
                static_cast<long long>(rows), o.columns, static_cast<unsigned long long>(written));
  } catch (const std::exception& e) {
    std::remove(tmp.c_str());
    std::fprintf(stderr, "shardprop_make_csv: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
