// One optimizer step over the flat parameter array: the update rule's constants for a step,
// optional gradient-norm clipping, and the rule applied segment by segment, reading the shard
// gradient buffers in shard order. Owns the optimizer's state. Leaves out running the segments
// in parallel: the caller's for_each_segment decides, and results never depend on it.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "base/aligned.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "train/gradient_buffer.hpp"
#include "train/optimizer.hpp"

namespace shardprop::detail {

class ParameterUpdate {
 public:
  // Sizes the optimizer state and the segments once for these tensors.
  ParameterUpdate(const std::vector<TensorInfo>& tensors, std::size_t parameter_count,
                  const TrainerSettings& settings);

  std::size_t segment_count() const { return segments_.size(); }

  // Updates params from the summed gradients of shards [0, active) with the learning rate and
  // the 0-based step count (Adam's bias correction). for_each_segment(f) must call f(i) once
  // for every i < segment_count(), in any order or in parallel. Returns the L2 norm of the
  // summed gradient before clipping and decay; when clipping finds it not finite it returns it
  // at once, before any parameter moves.
  template <class ForEachSegment>
  double apply(float* params, const GradientBuffers& gradients, int active, double learning_rate,
               std::int64_t step, ForEachSegment&& for_each_segment) {
    UpdateRule rule = rule_for(learning_rate, step);
    if (settings_.clip_grad_norm > 0.0f) {
      // The norm must be known before any parameter moves: one more read of the buffers.
      for_each_segment([&](std::size_t i) {
        segment_squares_[i] = summed_gradient_squares(gradients, active, segments_[i]);
      });
      const double norm = total_norm();
      if (!std::isfinite(norm)) return norm;
      rule.gradient_scale = clip_scale(norm);
    }
    float* state0 = state_.empty() ? nullptr : state_[0].data();
    float* state1 = state_.size() < 2 ? nullptr : state_[1].data();
    for_each_segment([&](std::size_t i) {
      segment_squares_[i] =
          apply_update(params, state0, state1, gradients, active, segments_[i], rule);
    });
    return total_norm();
  }

  // The same update one segment at a time, for a caller that starts each segment as soon as
  // every shard's gradient of it is complete: begin_step, then update_segment(i) once for every
  // i < segment_count() (in any order, in parallel), then finish_step() for the norm. The same
  // bits as apply(). Without gradient clipping only: clipping needs the norm before any update.
  void begin_step(double learning_rate, std::int64_t step);
  void update_segment(float* params, const GradientBuffers& gradients, int active, std::size_t i);
  double finish_step() const { return total_norm(); }

  // The segments [first, last) that lie within the parameters [begin, end): a tensor's or a
  // layer's (segments never straddle a tensor's end).
  std::pair<std::size_t, std::size_t> segments_within(std::size_t begin, std::size_t end) const;

  // The optimizer's slots, each laid out like the parameters (see optimizer_slots).
  std::vector<AlignedFloats>& state() { return state_; }
  const std::vector<AlignedFloats>& state() const { return state_; }

 private:
  UpdateRule rule_for(double learning_rate, std::int64_t step) const;
  float clip_scale(double norm) const;
  // √ of the segments' sums of squares, added in segment order: the same bits whatever ran in
  // parallel.
  double total_norm() const;

  TrainerSettings settings_;
  std::vector<ParameterSegment> segments_;
  std::vector<double> segment_squares_;  // per segment, written in parallel
  UpdateRule step_rule_;                 // begin_step's rule, for update_segment
  std::vector<AlignedFloats> state_;
};

}  // namespace shardprop::detail
