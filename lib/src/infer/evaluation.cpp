// evaluate_model: the report's sums over rows that the shared RowEvaluator (nn/inference.hpp)
// feeds one by one in data order, which makes the report independent of threads and chunking.
#include "shardprop/evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "nn/inference.hpp"
#include "nn/loss.hpp"
#include "nn/network.hpp"
#include "shardprop/data_stream.hpp"

namespace shardprop {
namespace {

// Running sums of one target column: errors, and Welford's mean and M2 = Σ (t − t̄)² of the
// targets (one pass, stable when |t̄| ≫ the spread).
struct TargetSums {
  double absolute_error = 0.0;
  double squared_error = 0.0;
  double mean = 0.0;
  double m2 = 0.0;
};

double ratio_or_zero(double numerator, double denominator) {
  return denominator > 0.0 ? numerator / denominator : 0.0;
}

// The report's sums, fed row by row in data order by the shared RowEvaluator.
class Accumulator {
 public:
  explicit Accumulator(const Model& model)
      : loss_(model.spec().loss),
        outputs_(model.outputs()),
        rows_(detail::network_of(model), 1, detail::TargetWording::report, "evaluate",
              [this](const float* y, const float* t, const detail::MetricSums& row) {
                add_row(y, t, row);
              }) {
    if (loss_ == Loss::xent) confusion_.assign(static_cast<std::size_t>(outputs_) * outputs_, 0);
    if (loss_ == Loss::bce) output_correct_.assign(static_cast<std::size_t>(outputs_), 0);
    if (loss_ == Loss::mse) targets_.assign(static_cast<std::size_t>(outputs_), TargetSums{});
  }

  void add(const Dataset& data) { rows_.add(data); }

  EvaluationReport finish() {
    rows_.finish();
    EvaluationReport report;
    report.loss = loss_;
    report.rows = rows_.rows();
    const auto rows = static_cast<double>(report.rows);
    report.mean_loss = ratio_or_zero(loss_sum_, rows);
    switch (loss_) {
      case Loss::xent: {
        const int k = outputs_;
        report.classes = k;
        report.confusion = confusion_;
        report.per_class.resize(static_cast<std::size_t>(k));
        std::int64_t right = 0;
        for (int t = 0; t < k; ++t) {
          for (int p = 0; p < k; ++p) {
            const std::int64_t count = report.confusion_count(t, p);
            report.per_class[static_cast<std::size_t>(t)].support += count;
            report.per_class[static_cast<std::size_t>(p)].predicted += count;
          }
          right += report.confusion_count(t, t);
        }
        for (int c = 0; c < k; ++c) {
          ClassQuality& q = report.per_class[static_cast<std::size_t>(c)];
          const auto hits = static_cast<double>(report.confusion_count(c, c));
          q.precision = ratio_or_zero(hits, static_cast<double>(q.predicted));
          q.recall = ratio_or_zero(hits, static_cast<double>(q.support));
          q.f1 = ratio_or_zero(2.0 * q.precision * q.recall, q.precision + q.recall);
        }
        report.accuracy = ratio_or_zero(static_cast<double>(right), rows);
        break;
      }
      case Loss::bce: {
        std::int64_t right = 0;
        for (const std::int64_t correct : output_correct_) {
          report.output_accuracy.push_back(ratio_or_zero(static_cast<double>(correct), rows));
          right += correct;
        }
        report.accuracy = ratio_or_zero(static_cast<double>(right), rows * outputs_);
        break;
      }
      case Loss::mse: {
        double absolute = 0.0;
        double squared = 0.0;
        double r2_sum = 0.0;
        for (const TargetSums& t : targets_) {
          RegressionQuality q;
          q.rmse = std::sqrt(ratio_or_zero(t.squared_error, rows));
          q.mae = ratio_or_zero(t.absolute_error, rows);
          if (t.m2 > 0.0) {
            q.r2 = 1.0 - t.squared_error / t.m2;
          } else {
            q.r2 = t.squared_error == 0.0 ? 1.0 : 0.0;  // a constant target: see the header
          }
          if (report.rows == 0) q.r2 = 0.0;
          report.per_target.push_back(q);
          absolute += t.absolute_error;
          squared += t.squared_error;
          r2_sum += q.r2;
        }
        const double values = rows * outputs_;
        report.overall.rmse = std::sqrt(ratio_or_zero(squared, values));
        report.overall.mae = ratio_or_zero(absolute, values);
        report.overall.r2 = r2_sum / outputs_;
        break;
      }
    }
    return report;
  }

 private:
  void add_row(const float* z, const float* t, const detail::MetricSums& row) {
    ++counted_;
    loss_sum_ += row.loss;  // the same per-row loss as Trainer::evaluate
    const auto out = static_cast<std::size_t>(outputs_);
    switch (loss_) {
      case Loss::xent: {
        const auto predicted = static_cast<std::size_t>(std::max_element(z, z + out) - z);
        ++confusion_[static_cast<std::size_t>(t[0]) * out + predicted];
        break;
      }
      case Loss::bce:
        for (std::size_t j = 0; j < out; ++j) {
          output_correct_[j] += (z[j] > 0.0f) == (t[j] > 0.5f) ? 1 : 0;
        }
        break;
      case Loss::mse: {
        const auto count = static_cast<double>(counted_);
        for (std::size_t j = 0; j < out; ++j) {
          TargetSums& s = targets_[j];
          const double e = static_cast<double>(z[j]) - t[j];
          s.absolute_error += std::fabs(e);
          s.squared_error += e * e;
          const double before = t[j] - s.mean;
          s.mean += before / count;
          s.m2 += before * (t[j] - s.mean);
        }
        break;
      }
    }
  }

  Loss loss_;
  int outputs_;
  detail::RowEvaluator rows_;
  std::int64_t counted_ = 0;  // rows summed so far
  double loss_sum_ = 0.0;
  std::vector<std::int64_t> confusion_;       // xent
  std::vector<std::int64_t> output_correct_;  // bce
  std::vector<TargetSums> targets_;           // mse
};

}  // namespace

EvaluationReport evaluate_model(const Model& model, const Dataset& data) {
  Accumulator sums(model);
  sums.add(data);
  return sums.finish();
}

EvaluationReport evaluate_model(const Model& model, DataStream& stream) {
  Accumulator sums(model);
  for_each_chunk(stream, [&](const Dataset& chunk) { sums.add(chunk); });
  return sums.finish();
}

}  // namespace shardprop
