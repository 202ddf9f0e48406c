// How good a trained model is on labelled data: the mean loss plus a confusion matrix and
// per-class precision/recall/F1 for classifiers, per-output accuracy for bce, and RMSE, MAE and
// R² for regression. Leaves out turning rows into predictions for output (prediction.hpp).
#pragma once

#include <cstdint>
#include <vector>

#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"

namespace shardprop {

// One class of a classifier, from the confusion matrix.
struct ClassQuality {
  std::int64_t support = 0;    // rows whose true class this is
  std::int64_t predicted = 0;  // rows predicted as this class
  double precision = 0.0;      // right / predicted; defined as 0 for a class never predicted
  double recall = 0.0;         // right / support; defined as 0 for a class that never occurs
  double f1 = 0.0;             // 2·precision·recall / (precision + recall); 0 when both are 0
};

// Regression quality of one target column, or of all of them together.
struct RegressionQuality {
  double rmse = 0.0;  // √(mean (y − t)²)
  double mae = 0.0;   // mean |y − t|
  // 1 − SS_res/SS_tot, SS_res = Σ (y − t)², SS_tot = Σ (t − t̄)² with t̄ the mean of the evaluated
  // targets. A constant target (SS_tot = 0) gives 1 when every prediction is exact, else 0 (as
  // scikit-learn's r2_score with force_finite). Can be negative: worse than predicting t̄.
  double r2 = 0.0;
};

struct EvaluationReport {
  Loss loss = Loss::mse;
  std::int64_t rows = 0;
  // Σ of the rows' data losses / rows, as Trainer::evaluate: ½Σ_j (y_j − t_j)² per row for mse,
  // −log softmax(z)_t for xent, Σ_j of the sigmoid cross-entropy for bce.
  double mean_loss = 0.0;
  // xent: rows whose largest logit is the true class (the first largest on ties) / rows.
  // bce: outputs with (logit > 0) == (target > 0.5) / (rows · outputs). 0 for mse.
  double accuracy = 0.0;

  // xent only (else empty): classes² counts, row-major, row = true class, column = predicted.
  int classes = 0;
  std::vector<std::int64_t> confusion;
  std::vector<ClassQuality> per_class;

  // bce only: the accuracy of each output.
  std::vector<double> output_accuracy;

  // mse only: each target column, and all together (RMSE and MAE over every value; R² the
  // mean of the per-target R², scikit-learn's "uniform_average").
  std::vector<RegressionQuality> per_target;
  RegressionQuality overall;

  std::int64_t confusion_count(int true_class, int predicted_class) const {
    return confusion[static_cast<std::size_t>(true_class) * static_cast<std::size_t>(classes) +
                     static_cast<std::size_t>(predicted_class)];
  }
};

// The report of a model on a dataset whose features are what the model takes (standardized if
// it was trained so) and whose targets match the loss (class indices 0..outputs-1 for xent,
// values in [0, 1] for bce, target_width = outputs for mse and bce). Inference mode (batch norm
// uses running statistics). Runs in parallel in the caller's tbb::task_arena; the result is
// the same for any thread count and any chunking, because predictions are made in parallel but
// summed row by row in data order. An empty dataset gives rows = 0 and zero metrics. Throws
// Error for a shape that does not fit the model or a bad target, naming the row (1-based).
EvaluationReport evaluate_model(const Model& model, const Dataset& data);
// The same over a stream (rewound first): equal, bit for bit, to evaluate_model on the dataset
// the stream's chunks make up together, whatever their sizes.
EvaluationReport evaluate_model(const Model& model, DataStream& stream);

}  // namespace shardprop
