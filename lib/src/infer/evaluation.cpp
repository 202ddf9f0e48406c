// evaluate_model: rows go through the model in pieces of kPieceRows on a grid of the data's row
// numbers (a stream's chunk boundaries carry a partial piece over to the next chunk), so every
// row's output is the same whether the data comes whole or streamed. Pieces run in parallel;
// the sums then add rows one by one in data order, which makes the report independent of
// threads and chunking.
#include "shardprop/evaluation.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "base/blas.hpp"
#include "base/matrix.hpp"
#include "nn/loss.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

constexpr std::int64_t kPieceRows = 256;

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

class Accumulator {
 public:
  explicit Accumulator(const Model& model)
      : model_(model),
        loss_(model.spec().loss),
        inputs_(model.inputs()),
        outputs_(model.outputs()),
        target_width_(detail::target_width(loss_, outputs_)) {
    if (loss_ == Loss::xent) confusion_.assign(static_cast<std::size_t>(outputs_) * outputs_, 0);
    if (loss_ == Loss::bce) output_correct_.assign(static_cast<std::size_t>(outputs_), 0);
    if (loss_ == Loss::mse) targets_.assign(static_cast<std::size_t>(outputs_), TargetSums{});
    pending_features_.reserve(static_cast<std::size_t>(kPieceRows) * inputs_);
    pending_targets_.reserve(static_cast<std::size_t>(kPieceRows) * target_width_);
  }

  void add(const Dataset& data) {
    check(data);
    const auto in = static_cast<std::size_t>(inputs_);
    const auto tw = static_cast<std::size_t>(target_width_);
    std::int64_t row = 0;
    // Complete the piece the previous chunk left open.
    if (pending_rows() > 0) {
      const std::int64_t take = std::min(kPieceRows - pending_rows(), data.rows);
      append_pending(data, 0, take);
      row = take;
      if (pending_rows() == kPieceRows) flush_pending();
    }
    const std::int64_t whole = (data.rows - row) / kPieceRows * kPieceRows;
    if (whole > 0) {
      run(data.features.data() + static_cast<std::size_t>(row) * in,
          data.targets.data() + static_cast<std::size_t>(row) * tw, whole);
      row += whole;
    }
    append_pending(data, row, data.rows - row);
  }

  EvaluationReport finish() {
    flush_pending();
    EvaluationReport report;
    report.loss = loss_;
    report.rows = rows_;
    const auto rows = static_cast<double>(rows_);
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
          if (rows_ == 0) q.r2 = 0.0;
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
  std::int64_t pending_rows() const {
    return static_cast<std::int64_t>(pending_features_.size()) / inputs_;
  }

  void append_pending(const Dataset& data, std::int64_t begin, std::int64_t count) {
    const auto in = static_cast<std::size_t>(inputs_);
    const auto tw = static_cast<std::size_t>(target_width_);
    const auto b = static_cast<std::size_t>(begin);
    const auto n = static_cast<std::size_t>(count);
    pending_features_.insert(pending_features_.end(), data.features.begin() + b * in,
                             data.features.begin() + (b + n) * in);
    pending_targets_.insert(pending_targets_.end(), data.targets.begin() + b * tw,
                            data.targets.begin() + (b + n) * tw);
  }

  void flush_pending() {
    const std::int64_t rows = pending_rows();
    if (rows > 0) run(pending_features_.data(), pending_targets_.data(), rows);
    pending_features_.clear();
    pending_targets_.clear();
  }

  // The shapes, values and targets of a dataset, before any of it is used. Row numbers in
  // messages count from the first row evaluated (1-based), across a stream's chunks.
  void check(const Dataset& data) const {
    if (data.feature_count != inputs_ || data.target_width != target_width_) {
      throw Error("evaluate: the data has " + std::to_string(data.feature_count) +
                  " features and " + std::to_string(data.target_width) +
                  " targets per row; the model needs " + std::to_string(inputs_) + " and " +
                  std::to_string(target_width_));
    }
    data.validate();
    const std::int64_t first = rows_ + pending_rows() + 1;
    for (std::int64_t r = 0; r < data.rows; ++r) {
      const float* t = data.targets.data() + static_cast<std::size_t>(r) * target_width_;
      const std::string where = "evaluate: row " + std::to_string(first + r) + ": target ";
      if (loss_ == Loss::xent &&
          !(t[0] >= 0.0f && t[0] < static_cast<float>(outputs_) && t[0] == std::floor(t[0]))) {
        throw Error(where + std::to_string(t[0]) + " is not a class index in [0, " +
                    std::to_string(outputs_) + ")");
      }
      for (int j = 0; loss_ == Loss::bce && j < target_width_; ++j) {
        if (!(t[j] >= 0.0f && t[j] <= 1.0f)) {
          throw Error(where + std::to_string(t[j]) + " is outside [0, 1], which bce needs");
        }
      }
    }
  }

  // Outputs of `rows` rows in parallel pieces, then the sums row by row in order.
  void run(const float* features, const float* targets, std::int64_t rows) {
    const auto in = static_cast<std::size_t>(inputs_);
    const auto out = static_cast<std::size_t>(outputs_);
    const auto tw = static_cast<std::size_t>(target_width_);
    const auto n = static_cast<std::size_t>(rows);
    logits_.resize(n * out);
    row_loss_.resize(n);
    predicted_.resize(loss_ == Loss::xent ? n : 0);
    const std::int64_t pieces = (rows + kPieceRows - 1) / kPieceRows;
    {
      detail::SingleThreadedBlas one_blas_thread;
      tbb::parallel_for(
          tbb::blocked_range<std::int64_t>(0, pieces, 1),
          [&](const tbb::blocked_range<std::int64_t>& range) {
            for (std::int64_t piece = range.begin(); piece < range.end(); ++piece) {
              const auto begin = static_cast<std::size_t>(piece * kPieceRows);
              const std::size_t count = std::min<std::size_t>(kPieceRows, n - begin);
              model_.predict({features + begin * in, count * in},
                             {logits_.data() + begin * out, count * out});
              for (std::size_t r = begin; r < begin + count; ++r) {
                const detail::ConstMatrix y{logits_.data() + r * out, 1, outputs_, outputs_};
                // The same per-row loss as Trainer::evaluate.
                row_loss_[r] = detail::metric_sums(loss_, y, targets + r * tw).loss;
                if (loss_ == Loss::xent) {
                  const float* z = y.data;
                  predicted_[r] = static_cast<int>(std::max_element(z, z + out) - z);
                }
              }
            }
          });
    }
    for (std::size_t r = 0; r < n; ++r) {
      loss_sum_ += row_loss_[r];
      const float* z = logits_.data() + r * out;
      const float* t = targets + r * tw;
      switch (loss_) {
        case Loss::xent:
          ++confusion_[static_cast<std::size_t>(t[0]) * out +
                       static_cast<std::size_t>(predicted_[r])];
          break;
        case Loss::bce:
          for (std::size_t j = 0; j < out; ++j) {
            output_correct_[j] += (z[j] > 0.0f) == (t[j] > 0.5f) ? 1 : 0;
          }
          break;
        case Loss::mse: {
          const auto count = static_cast<double>(rows_) + static_cast<double>(r) + 1.0;
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
    rows_ += rows;
  }

  const Model& model_;
  Loss loss_;
  int inputs_;
  int outputs_;
  int target_width_;
  std::int64_t rows_ = 0;  // rows summed so far
  double loss_sum_ = 0.0;
  std::vector<std::int64_t> confusion_;       // xent
  std::vector<std::int64_t> output_correct_;  // bce
  std::vector<TargetSums> targets_;           // mse
  // Reused from call to call: the rows of an open piece, and per-row results of a run.
  std::vector<float> pending_features_, pending_targets_;
  std::vector<float> logits_;
  std::vector<double> row_loss_;
  std::vector<int> predicted_;
};

}  // namespace

EvaluationReport evaluate_model(const Model& model, const Dataset& data) {
  Accumulator sums(model);
  sums.add(data);
  return sums.finish();
}

EvaluationReport evaluate_model(const Model& model, DataStream& stream) {
  Accumulator sums(model);
  Dataset chunk;
  stream.rewind();
  while (stream.next(chunk)) sums.add(chunk);
  return sums.finish();
}

}  // namespace shardprop
