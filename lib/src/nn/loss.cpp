// Stable loss forms: log-sum-exp for softmax cross-entropy, log1p(exp(−|z|)) for sigmoid BCE.
#include "nn/loss.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "nn/activation.hpp"

namespace shardprop::detail {
namespace {

// Outputs whose exp(z − max) a softmax row keeps; wider rows compute the rest again, which
// gives the same values (exp is a pure function), so the width never changes the bits.
constexpr int kKeptExps = 64;

// One row's softmax from one exponential per output.
struct SoftmaxRow {
  float max;
  double sum;      // Σ exp(z − max)
  double log_sum;  // log sum
  std::array<double, kKeptExps> kept;

  SoftmaxRow(const float* z, int n) : max(*std::max_element(z, z + n)), sum(0.0) {
    for (int j = 0; j < n; ++j) {
      const double e = std::exp(static_cast<double>(z[j] - max));
      if (j < kKeptExps) kept[j] = e;
      sum += e;
    }
    log_sum = std::log(sum);
  }
  double probability(const float* z, int j) const {
    const double e = j < kKeptExps ? kept[j] : std::exp(static_cast<double>(z[j] - max));
    return e / sum;
  }
};

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
      case Loss::xent: {
        const SoftmaxRow s(z, n);
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
        break;
      }
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

MetricSums metric_sums(Loss loss, ConstMatrix y, const float* targets) {
  MetricSums m;
  const int n = y.cols;
  const int tw = target_width(loss, n);
  for (int r = 0; r < y.rows; ++r) {
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
      case Loss::xent: {
        const SoftmaxRow s(z, n);
        const int label = static_cast<int>(t[0]);
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
        break;
      }
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
  return m;
}

}  // namespace shardprop::detail
