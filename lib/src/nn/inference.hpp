// Inference over many labelled rows, the one implementation behind Trainer::evaluate and
// evaluate_model: the checks of data against a model, per-thread inference workspaces, and a
// row-by-row pass whose sums do not depend on threads or on how the data is chunked. Leaves
// the quality measures themselves to the callers.
#pragma once

#include <tbb/enumerable_thread_specific.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/matrix.hpp"
#include "nn/exact_metric_sums.hpp"
#include "nn/loss.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"

namespace shardprop::detail {

struct Network;
struct ShardWorkspace;

// Rows per forward call of inference: predict() and evaluation cut data on this grid.
inline constexpr int kInferenceRows = 256;

// One inference workspace (kInferenceRows rows) per thread, made on first use and kept. Any
// thread may call local() concurrently; a copy starts empty. Each task uses it only between
// two points where it does not wait for other TBB work, so nested parallelism cannot share it.
class InferenceWorkspaces {
 public:
  InferenceWorkspaces();
  InferenceWorkspaces(const InferenceWorkspaces&);
  InferenceWorkspaces& operator=(const InferenceWorkspaces&);
  ~InferenceWorkspaces();
  ShardWorkspace& local(const Network& net) const;

 private:
  mutable tbb::enumerable_thread_specific<std::unique_ptr<ShardWorkspace>> per_thread_;
};

// How a bad target is worded: the trainer's messages ("<what>: target of row N is ...", rows
// from 0; bce without the prefix) or evaluate_model's ("<what>: row N: target ...", rows from
// 1). Both are kept because callers (the CLI, the C API) show them as they are.
enum class TargetWording { trainer, report };

// The targets a loss takes: class indices in [0, outputs) for xent, values in [0, 1] for bce,
// any value for mse (Dataset::validate checks finiteness). first_row: the number of
// targets[0]'s row in messages. Throws Error at the first bad target.
void check_targets(Loss loss, int outputs, const float* targets, std::int64_t rows,
                   std::int64_t first_row, TargetWording wording, const std::string& what);

// A dataset's columns, values (Dataset::validate) and targets against the network.
void check_data(const Network& net, const Dataset& data, std::int64_t first_row,
                TargetWording wording, const std::string& what);

// Feeds labelled rows through the network in inference mode and hands each row, in data
// order, to on_row(y, targets, sums of that row). Rows go through the network in pieces of
// kInferenceRows on a grid of the rows' numbers (a chunk's last rows wait for the next chunk
// or finish()), pieces in parallel in the caller's task arena; so every row's output, and the
// order of the calls, are the same for any thread count and any chunking.
class RowEvaluator {
 public:
  using RowCallback = std::function<void(const float* y, const float* targets, const MetricSums&)>;
  // first_row: how messages number the first row (Trainer counts from 0, evaluate_model from 1).
  // grid_origin: the index in the whole of the first row given, when these rows are one rank's
  // part of a whole: pieces then fall on the whole's grid, so each row's output is the bits a
  // single process computes.
  RowEvaluator(const Network& net, std::int64_t first_row, TargetWording wording, std::string what,
               RowCallback on_row, std::int64_t grid_origin = 0);
  // Only the totals: every row's sums are added exactly into *totals, in parallel as the pieces
  // finish (exact sums need no order), with no call per row.
  RowEvaluator(const Network& net, std::int64_t first_row, TargetWording wording, std::string what,
               ExactMetricSums* totals, std::int64_t grid_origin = 0);

  void add(const Dataset& data);  // checks the whole chunk first; throws Error
  void finish();                  // the rows still waiting
  std::int64_t rows() const { return rows_; }

 private:
  std::int64_t pending_rows() const;
  void append_pending(const Dataset& data, std::int64_t begin, std::int64_t count);
  void run(const float* features, const float* targets, std::int64_t rows);

  const Network& net_;
  std::int64_t first_row_;
  std::int64_t grid_origin_;
  TargetWording wording_;
  std::string what_;
  RowCallback on_row_;
  ExactMetricSums* totals_ = nullptr;
  std::mutex totals_mutex_;
  int inputs_, outputs_, target_width_;
  std::int64_t rows_ = 0;  // rows handed to on_row so far
  // Reused from call to call: the rows of an open piece, and per-row results of a run.
  std::vector<float> pending_features_, pending_targets_, outputs_buffer_;
  std::vector<MetricSums> row_sums_;
};

}  // namespace shardprop::detail
