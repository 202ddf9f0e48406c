// Stable loss forms: log-sum-exp for softmax cross-entropy, log1p(exp(−|z|)) for sigmoid BCE.
#include "nn/loss.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "base/simd.hpp"
#include "nn/activation.hpp"

namespace shardprop::detail {
namespace {

// Outputs whose exp(z − max) a softmax row keeps; wider rows compute the rest again, which
// gives the same values (exp is a pure function), so the width never changes the bits.
constexpr int kKeptExps = 64;

// exp(x) in double for x ≤ 0 (a logit less its row's maximum) from basic operations only, so
// a loop of it vectorises (libm's exp is a call per element) and gives the same bits in every
// clone: x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite: n·ln2_hi is exact), eʳ by its Taylor
// polynomial of degree 13 (remainder < 5e-18 relative), 2ⁿ built in the exponent bits.
// Within a few ulp of the correctly rounded value; below −708 (eˣ < 4e-308, nothing next to
// the row's term e⁰ = 1) it returns 0; a NaN stays NaN. The range test compares bit patterns:
// a floating-point comparison could trap, which keeps the compiler from vectorising the loop.
inline double exp_of_nonpositive(double x) {
  constexpr double kLog2e = 1.4426950408889634;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // low 32 bits zero
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  constexpr double kRound = 6755399441055744.0;  // 1.5·2⁵²: adding it rounds to an integer
  constexpr double kUnderflow = -708.0;
  constexpr std::uint64_t kMagnitude = 0x7fff'ffff'ffff'ffffULL;
  const std::uint64_t bits = std::bit_cast<std::uint64_t>(x);
  const std::uint64_t magnitude = bits & kMagnitude;
  // x < −708, −∞ included, NaN not: |x| > 708 and |x| ≤ ∞ (x ≤ 0 by contract).
  const bool underflow = (magnitude > std::bit_cast<std::uint64_t>(-kUnderflow)) &
                         (magnitude <= std::bit_cast<std::uint64_t>(HUGE_VAL));
  // Below −708 what follows is garbage (2ⁿ would leave the exponent range), discarded at the
  // end: computing it anyway keeps the loop free of branches.
  const double shifted = x * kLog2e + kRound;
  const double n = shifted - kRound;
  const double r = (x - n * kLn2Hi) - n * kLn2Lo;
  // Σ r^k / k! for k ≤ 13 by Estrin's scheme: pairs, then powers r², r⁴, r⁸, a dependency
  // chain of 6 operations instead of Horner's 26, so the loop runs at the units' throughput.
  const double r2 = r * r;
  const double r4 = r2 * r2;
  const double r8 = r4 * r4;
  const double p01 = 1.0 + r;
  const double p23 = 1.0 / 2.0 + r * (1.0 / 6.0);
  const double p45 = 1.0 / 24.0 + r * (1.0 / 120.0);
  const double p67 = 1.0 / 720.0 + r * (1.0 / 5040.0);
  const double p89 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
  const double p1011 = 1.0 / 3628800.0 + r * (1.0 / 39916800.0);
  const double p1213 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
  const double p03 = p01 + r2 * p23;
  const double p47 = p45 + r2 * p67;
  const double p811 = p89 + r2 * p1011;
  const double p07 = p03 + r4 * p47;
  const double p813 = p811 + r4 * p1213;
  const double p = p07 + r8 * p813;
  // shifted's low mantissa bits hold n (its ulp is 1); x ≥ −708 keeps 2ⁿ normal.
  const std::int64_t exponent =
      std::bit_cast<std::int64_t>(shifted) - std::bit_cast<std::int64_t>(kRound) + 1023;
  const double power = std::bit_cast<double>(static_cast<std::uint64_t>(exponent) << 52);
  // All ones to keep the value, zero for 0.0: a mask rather than a select, which the compiler
  // would turn into a branch around the multiplication.
  const std::uint64_t keep = std::uint64_t{0} - static_cast<std::uint64_t>(!underflow);
  return std::bit_cast<double>(std::bit_cast<std::uint64_t>(p * power) & keep);
}

// Exponentials a block of softmax rows computes in one loop: a loop over one row's few outputs
// is bound by the polynomial's latency, one over many rows by throughput.
constexpr int kBlockExps = 1024;

// For rows [0, rows) of y (rows · min(cols, kKeptExps) ≤ kBlockExps): max[r] = the row's
// maximum and exps[r · kept + j] = exp(y[r][j] − max[r]) for j < kept = min(cols, kKeptExps).
SHARDPROP_MULTIVERSION void block_exps(ConstMatrix y, int rows, float* max, double* exps) {
  const int n = y.cols;
  const int kept = std::min(n, kKeptExps);
  for (int r = 0; r < rows; ++r) {
    const float* z = y.row(r);
    const float m = *std::max_element(z, z + n);
    max[r] = m;
    double* x = exps + static_cast<std::ptrdiff_t>(r) * kept;
    for (int j = 0; j < kept; ++j) x[j] = static_cast<double>(z[j] - m);
  }
  const int count = rows * kept;
  for (int i = 0; i < count; ++i) exps[i] = exp_of_nonpositive(exps[i]);
}

// One row's softmax from one exponential per output, the first kKeptExps of them computed
// beforehand (block_exps).
struct SoftmaxRow {
  float max;
  double sum;          // Σ exp(z − max)
  double log_sum;      // log sum
  const double* kept;  // exp(z[j] − max) for j < kKeptExps

  SoftmaxRow(const float* z, int n, float row_max, const double* exps)
      : max(row_max), sum(0.0), kept(exps) {
    const int kept_count = std::min(n, kKeptExps);
    for (int j = 0; j < kept_count; ++j) sum += kept[j];
    for (int j = kKeptExps; j < n; ++j) sum += exp_of_nonpositive(static_cast<double>(z[j] - max));
    log_sum = std::log(sum);
  }
  double probability(const float* z, int j) const {
    const double e = j < kKeptExps ? kept[j] : exp_of_nonpositive(static_cast<double>(z[j] - max));
    return e / sum;
  }
};

// Calls f(r, softmax of row r) for every row of y in order, the exponentials computed a block
// of rows at a time.
template <class F>
void for_each_softmax_row(ConstMatrix y, F&& f) {
  const int n = y.cols;
  const int kept = std::min(n, kKeptExps);
  const int block_rows = std::max(1, kBlockExps / kept);
  std::array<float, kBlockExps> max;
  std::array<double, kBlockExps> exps;
  for (int begin = 0; begin < y.rows; begin += block_rows) {
    const int rows = std::min(block_rows, y.rows - begin);
    const ConstMatrix block{y.row(begin), rows, n, y.stride};
    block_exps(block, rows, max.data(), exps.data());
    for (int r = 0; r < rows; ++r) {
      f(begin + r,
        SoftmaxRow(block.row(r), n, max[r], exps.data() + static_cast<std::ptrdiff_t>(r) * kept));
    }
  }
}

// −[t log σ(z) + (1−t) log(1−σ(z))] = max(z,0) − z·t + log(1 + exp(−|z|)).
inline double bce_term(float z, float t) {
  return std::max(z, 0.0f) - static_cast<double>(z) * t + std::log1p(std::exp(-std::fabs(z)));
}

}  // namespace

int target_width(Loss loss, int outputs) { return loss == Loss::xent ? 1 : outputs; }

double loss_forward_backward(Loss loss, ConstMatrix y, const float* targets, float scale,
                             Matrix delta, MetricSums* metrics) {
  const int n = y.cols;
  const int tw = target_width(loss, n);
  double total = 0.0;
  // The metrics come from the values the loss computes anyway, in metric_sums' formulas, so
  // they are the same bits as metric_sums(y) without a second pass of exponentials.
  MetricSums m;
  if (loss == Loss::xent) {
    for_each_softmax_row(y, [&](int r, const SoftmaxRow& s) {
      const float* z = y.row(r);
      const float* t = targets + static_cast<long>(r) * tw;
      float* d = delta.row(r);
      const int label = static_cast<int>(t[0]);
      const double row_loss = s.log_sum - static_cast<double>(z[label] - s.max);
      total += row_loss;
      m.loss += row_loss;
      for (int j = 0; j < n; ++j) {
        const double p = s.probability(z, j);
        const double e = p - (j == label ? 1.0 : 0.0);
        d[j] = scale * static_cast<float>(e);
        m.squared_error += e * e;
      }
      const int predicted = static_cast<int>(std::max_element(z, z + n) - z);
      m.correct += predicted == label ? 1.0 : 0.0;
      m.predictions += 1.0;
      m.outputs += n;
    });
    if (metrics != nullptr) *metrics = m;
    return total;
  }
  for (int r = 0; r < y.rows; ++r) {
    const float* z = y.row(r);
    const float* t = targets + static_cast<long>(r) * tw;
    float* d = delta.row(r);
    switch (loss) {
      case Loss::mse:
        for (int j = 0; j < n; ++j) {
          const float e = z[j] - t[j];
          total += 0.5 * static_cast<double>(e) * e;
          d[j] = scale * e;
        }
        if (metrics != nullptr) {
          for (int j = 0; j < n; ++j) {
            const double e = static_cast<double>(z[j]) - t[j];
            m.loss += 0.5 * e * e;
            m.squared_error += e * e;
          }
          m.outputs += n;
        }
        break;
      case Loss::xent:  // above
        break;
      case Loss::bce:
        for (int j = 0; j < n; ++j) {
          const double term = bce_term(z[j], t[j]);
          const float p = sigmoid(z[j]);
          total += term;
          d[j] = scale * (p - t[j]);
          m.loss += term;
          m.correct += (z[j] > 0.0f) == (t[j] > 0.5f) ? 1.0 : 0.0;
          const double e = static_cast<double>(p) - t[j];
          m.squared_error += e * e;
        }
        m.predictions += n;
        m.outputs += n;
        break;
    }
  }
  if (metrics != nullptr) *metrics = m;
  return total;
}

void MetricSums::add(const MetricSums& other) {
  loss += other.loss;
  correct += other.correct;
  predictions += other.predictions;
  squared_error += other.squared_error;
  outputs += other.outputs;
}

namespace {

// Adds row r's metric terms of y to sums_of(r), term by term in metric_sums' order, so that one
// MetricSums taking every row gives metric_sums' bits and one per row gives each row's.
template <class SumsOf>
void add_row_metrics(Loss loss, ConstMatrix y, const float* targets, SumsOf&& sums_of) {
  const int n = y.cols;
  const int tw = target_width(loss, n);
  if (loss == Loss::xent) {
    for_each_softmax_row(y, [&](int r, const SoftmaxRow& s) {
      MetricSums& m = sums_of(r);
      const float* z = y.row(r);
      const int label = static_cast<int>(targets[static_cast<long>(r) * tw]);
      m.loss += s.log_sum - static_cast<double>(z[label] - s.max);
      const int predicted = static_cast<int>(std::max_element(z, z + n) - z);
      m.correct += predicted == label ? 1.0 : 0.0;
      m.predictions += 1.0;
      for (int j = 0; j < n; ++j) {
        const double p = s.probability(z, j);
        const double e = p - (j == label ? 1.0 : 0.0);
        m.squared_error += e * e;
      }
      m.outputs += n;
    });
    return;
  }
  for (int r = 0; r < y.rows; ++r) {
    MetricSums& m = sums_of(r);
    const float* z = y.row(r);
    const float* t = targets + static_cast<long>(r) * tw;
    switch (loss) {
      case Loss::mse:
        for (int j = 0; j < n; ++j) {
          const double e = static_cast<double>(z[j]) - t[j];
          m.loss += 0.5 * e * e;
          m.squared_error += e * e;
        }
        m.outputs += n;
        break;
      case Loss::xent:  // above
        break;
      case Loss::bce:
        for (int j = 0; j < n; ++j) {
          m.loss += bce_term(z[j], t[j]);
          m.correct += (z[j] > 0.0f) == (t[j] > 0.5f) ? 1.0 : 0.0;
          const double e = static_cast<double>(sigmoid(z[j])) - t[j];
          m.squared_error += e * e;
        }
        m.predictions += n;
        m.outputs += n;
        break;
    }
  }
}

}  // namespace

MetricSums metric_sums(Loss loss, ConstMatrix y, const float* targets) {
  MetricSums m;
  add_row_metrics(loss, y, targets, [&](int) -> MetricSums& { return m; });
  return m;
}

void row_metric_sums(Loss loss, ConstMatrix y, const float* targets, std::span<MetricSums> rows) {
  std::fill(rows.begin(), rows.begin() + y.rows, MetricSums{});
  add_row_metrics(loss, y, targets,
                  [&](int r) -> MetricSums& { return rows[static_cast<std::size_t>(r)]; });
}

}  // namespace shardprop::detail
