// Inference over labelled rows: parallel pieces of kInferenceRows rows, then the rows one by one
// in data order.
#include "nn/inference.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <utility>
#include <vector>

#include "base/blas.hpp"
#include "nn/network.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {

InferenceWorkspaces::InferenceWorkspaces() = default;
InferenceWorkspaces::InferenceWorkspaces(const InferenceWorkspaces&) {}
InferenceWorkspaces& InferenceWorkspaces::operator=(const InferenceWorkspaces& other) {
  if (this != &other) per_thread_.clear();  // sized for another network
  return *this;
}
InferenceWorkspaces::~InferenceWorkspaces() = default;

ShardWorkspace& InferenceWorkspaces::local(const Network& net) const {
  std::unique_ptr<ShardWorkspace>& ws = per_thread_.local();
  if (!ws) ws = std::make_unique<ShardWorkspace>(net.make_inference_workspace(kInferenceRows));
  return *ws;
}

void check_targets(Loss loss, int outputs, const float* targets, std::int64_t rows,
                   std::int64_t first_row, TargetWording wording, const std::string& what) {
  if (loss == Loss::mse) return;
  const int width = target_width(loss, outputs);
  const bool report = wording == TargetWording::report;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* t = targets + r * width;
    if (loss == Loss::xent &&
        !(t[0] >= 0.0f && t[0] < static_cast<float>(outputs) && t[0] == std::floor(t[0]))) {
      // Messages are built only on failure: a step checks every row of its minibatch.
      const std::string row = std::to_string(first_row + r);
      const std::string range = "[0, " + std::to_string(outputs) + ")";
      throw Error(report ? what + ": row " + row + ": target " + std::to_string(t[0]) +
                               " is not a class index in " + range
                         : what + ": target of row " + row + " is " + std::to_string(t[0]) +
                               ", not a class index in " + range);
    }
    for (int j = 0; loss == Loss::bce && j < width; ++j) {
      if (!(t[j] >= 0.0f && t[j] <= 1.0f)) {
        const std::string row = std::to_string(first_row + r);
        throw Error(report ? what + ": row " + row + ": target " + std::to_string(t[j]) +
                                 " is outside [0, 1], which bce needs"
                           : "target of row " + row + " is " + std::to_string(t[j]) +
                                 "; bce needs targets in [0, 1]");
      }
    }
  }
}

void check_data(const Network& net, const Dataset& data, std::int64_t first_row,
                TargetWording wording, const std::string& what) {
  const int inputs = net.spec.inputs;
  const int width = target_width(net.spec.loss, net.outputs());
  if (data.feature_count != inputs || data.target_width != width) {
    throw Error(what + ": the data has " + std::to_string(data.feature_count) + " features and " +
                std::to_string(data.target_width) + " targets per row; the model needs " +
                std::to_string(inputs) + " and " + std::to_string(width));
  }
  data.validate();
  check_targets(net.spec.loss, net.outputs(), data.targets.data(), data.rows, first_row, wording,
                what);
}

RowEvaluator::RowEvaluator(const Network& net, std::int64_t first_row, TargetWording wording,
                           std::string what, RowCallback on_row, std::int64_t grid_origin)
    : net_(net),
      first_row_(first_row),
      grid_origin_(grid_origin),
      wording_(wording),
      what_(std::move(what)),
      on_row_(std::move(on_row)),
      inputs_(net.spec.inputs),
      outputs_(net.outputs()),
      target_width_(target_width(net.spec.loss, outputs_)) {
  pending_features_.reserve(static_cast<std::size_t>(kInferenceRows) * inputs_);
  pending_targets_.reserve(static_cast<std::size_t>(kInferenceRows) * target_width_);
}

RowEvaluator::RowEvaluator(const Network& net, std::int64_t first_row, TargetWording wording,
                           std::string what, ExactMetricSums* totals, std::int64_t grid_origin)
    : RowEvaluator(net, first_row, wording, std::move(what), RowCallback{}, grid_origin) {
  totals_ = totals;
}

std::int64_t RowEvaluator::pending_rows() const {
  return static_cast<std::int64_t>(pending_features_.size()) / inputs_;
}

void RowEvaluator::add(const Dataset& data) {
  check_data(net_, data, first_row_ + rows_ + pending_rows(), wording_, what_);
  const auto in = static_cast<std::size_t>(inputs_);
  const auto tw = static_cast<std::size_t>(target_width_);
  std::int64_t row = 0;
  // Complete the piece the previous chunk left open, or the first piece, which the grid of the
  // whole's row numbers may cut short.
  const std::int64_t room =
      kInferenceRows - (grid_origin_ + rows_ + pending_rows()) % kInferenceRows;
  if (pending_rows() > 0 || room < kInferenceRows) {
    const std::int64_t take = std::min(room, data.rows);
    append_pending(data, 0, take);
    row = take;
    if (take == room) finish();
  }
  const std::int64_t whole = (data.rows - row) / kInferenceRows * kInferenceRows;
  if (whole > 0) {
    run(data.features.data() + static_cast<std::size_t>(row) * in,
        data.targets.data() + static_cast<std::size_t>(row) * tw, whole);
    row += whole;
  }
  append_pending(data, row, data.rows - row);
}

void RowEvaluator::finish() {
  const std::int64_t rows = pending_rows();
  if (rows > 0) run(pending_features_.data(), pending_targets_.data(), rows);
  pending_features_.clear();
  pending_targets_.clear();
}

void RowEvaluator::append_pending(const Dataset& data, std::int64_t begin, std::int64_t count) {
  const auto in = static_cast<std::size_t>(inputs_);
  const auto tw = static_cast<std::size_t>(target_width_);
  const auto b = static_cast<std::size_t>(begin);
  const auto n = static_cast<std::size_t>(count);
  pending_features_.insert(pending_features_.end(), data.features.begin() + b * in,
                           data.features.begin() + (b + n) * in);
  pending_targets_.insert(pending_targets_.end(), data.targets.begin() + b * tw,
                          data.targets.begin() + (b + n) * tw);
}

void RowEvaluator::run(const float* features, const float* targets, std::int64_t rows) {
  const auto in = static_cast<std::size_t>(inputs_);
  const auto out = static_cast<std::size_t>(outputs_);
  const auto tw = static_cast<std::size_t>(target_width_);
  const auto n = static_cast<std::size_t>(rows);
  const auto full = static_cast<std::size_t>(kInferenceRows);
  if (totals_ == nullptr) {
    outputs_buffer_.resize(n * out);
    row_sums_.resize(n);
  }
  // Pieces lie on the grid of the whole's row numbers; the first may start inside a grid cell.
  const auto lead = static_cast<std::size_t>((grid_origin_ + rows_) % kInferenceRows);
  const std::size_t first = std::min(n, full - lead);
  const auto pieces = static_cast<std::int64_t>(1 + (n - first + full - 1) / full);
  const float* params = net_.parameters.data();
  {
    SingleThreadedBlas one_blas_thread;
    tbb::parallel_for(
        tbb::blocked_range<std::int64_t>(0, pieces, 1),
        [&](const tbb::blocked_range<std::int64_t>& range) {
          ShardWorkspace& ws = net_.inference.local(net_);
          std::vector<float> padded;
          std::vector<MetricSums> piece_rows;
          for (std::int64_t piece = range.begin(); piece < range.end(); ++piece) {
            const std::size_t begin = piece == 0 ? 0 : first + (piece - 1) * full;
            const std::size_t count = piece == 0 ? first : std::min(full, n - begin);
            const std::size_t at = piece == 0 ? lead : 0;  // the first row's place in its cell
            // A row's output bits depend on the product's shape and the row's place in it
            // (BLAS kernels treat edge rows apart), never on the other rows: a cell this piece
            // fills only in part runs as a whole cell, zeros elsewhere, so each row gets the
            // bits it gets when the cell is filled, whichever process holds the other rows.
            const float* x_rows = features + begin * in;
            if (count < full) {
              padded.assign(full * in, 0.0f);
              std::copy_n(x_rows, count * in, padded.data() + at * in);
              x_rows = padded.data();
            }
            const int shape_rows = count < full ? kInferenceRows : static_cast<int>(count);
            const ConstMatrix x{x_rows, shape_rows, inputs_, inputs_};
            const ConstMatrix y = net_.forward(params, x, ws);
            const std::size_t skip = count < full ? at : 0;
            // Each row's metrics alone (the same bits however the rows are cut into pieces),
            // a piece's rows in one call so that their exponentials share loops.
            const ConstMatrix piece_y{y.row(static_cast<int>(skip)), static_cast<int>(count),
                                      outputs_, y.stride};
            const float* piece_targets = targets + begin * tw;
            if (totals_ != nullptr) {
              piece_rows.resize(count);
              row_metric_sums(net_.spec.loss, piece_y, piece_targets, piece_rows);
              ExactMetricSums piece_sums;
              for (const MetricSums& row : piece_rows) piece_sums.add(row);
              const std::lock_guard lock(totals_mutex_);
              totals_->merge(piece_sums);
              continue;
            }
            row_metric_sums(net_.spec.loss, piece_y, piece_targets,
                            std::span(row_sums_).subspan(begin, count));
            for (std::size_t r = 0; r < count; ++r) {
              std::copy_n(piece_y.row(static_cast<int>(r)), out,
                          outputs_buffer_.data() + (begin + r) * out);
            }
          }
        });
  }
  for (std::size_t r = 0; totals_ == nullptr && r < n; ++r) {
    on_row_(outputs_buffer_.data() + r * out, targets + r * tw, row_sums_[r]);
  }
  rows_ += rows;
}

}  // namespace shardprop::detail
