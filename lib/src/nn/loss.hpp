// Output losses: the value summed over a shard's rows and the delta dL/dy, each row's term
// scaled by 1/B for the global minibatch size B, so per-shard gradients add up to the
// gradient of the minibatch mean.
#pragma once

#include <span>

#include "base/matrix.hpp"
#include "shardprop/model.hpp"

namespace shardprop::detail {

// Targets per row: 1 (a class index) for xent, the output width otherwise.
int target_width(Loss loss, int outputs);

// Per-shard sums for accuracy and RMSE, added in a fixed order by the caller.
struct MetricSums {
  double loss = 0.0;
  double correct = 0.0;        // rows (xent) or outputs (bce) predicted right
  double predictions = 0.0;    // how many predictions 'correct' counts over
  double squared_error = 0.0;  // Σ (y − t)² over all outputs (mse, bce uses probabilities)
  double outputs = 0.0;        // how many terms squared_error sums
  void add(const MetricSums& other);
};
MetricSums metric_sums(Loss loss, ConstMatrix y, const float* targets);
// rows[r] = metric_sums of row r of y alone, for every row: the same bits as a call per row,
// with the exponentials of a block of rows computed together. rows.size() ≥ y.rows.
void row_metric_sums(Loss loss, ConstMatrix y, const float* targets, std::span<MetricSums> rows);

// y: [rows, outputs] network output (logits for xent/bce); targets: [rows, target_width];
// delta: [rows, outputs] receives scale · dL_row/dy. Returns Σ_rows L_row (unscaled). When
// metrics is given it receives metric_sums(loss, y, targets), from the same pass.
double loss_forward_backward(Loss loss, ConstMatrix y, const float* targets, float scale,
                             Matrix delta, MetricSums* metrics = nullptr);

}  // namespace shardprop::detail
