// The per-step constants of the update rule and the fixed-order gradient norm.
#include "train/parameter_update.hpp"

#include <cmath>

namespace shardprop::detail {
namespace {

// Segments below this size cost more to schedule than to update.
constexpr std::size_t kSegmentFloats = std::size_t{16} * 1024;

}  // namespace

ParameterUpdate::ParameterUpdate(const std::vector<TensorInfo>& tensors,
                                 std::size_t parameter_count, const TrainerSettings& settings)
    : settings_(settings), segments_(parameter_segments(tensors, kSegmentFloats)) {
  segment_squares_.assign(segments_.size(), 0.0);
  for (int slot = 0; slot < optimizer_slots(settings); ++slot) {
    state_.emplace_back(parameter_count, 0.0f);
  }
}

UpdateRule ParameterUpdate::rule_for(double learning_rate, std::int64_t step) const {
  UpdateRule rule;
  rule.optimizer = settings_.optimizer;
  rule.learning_rate = static_cast<float>(learning_rate);
  rule.weight_decay = settings_.weight_decay;
  rule.momentum = settings_.momentum;
  rule.nesterov = settings_.nesterov;
  rule.beta1 = settings_.adam_beta1;
  rule.beta2 = settings_.adam_beta2;
  rule.epsilon = settings_.adam_epsilon;
  if (settings_.optimizer == Optimizer::adam) {
    const double t = static_cast<double>(step + 1);
    rule.bias_correction1 = static_cast<float>(1.0 - std::pow(settings_.adam_beta1, t));
    rule.bias_correction2 = static_cast<float>(1.0 - std::pow(settings_.adam_beta2, t));
  }
  return rule;
}

void ParameterUpdate::begin_step(double learning_rate, std::int64_t step) {
  step_rule_ = rule_for(learning_rate, step);
}

void ParameterUpdate::update_segment(float* params, const GradientBuffers& gradients, int active,
                                     std::size_t i) {
  float* state0 = state_.empty() ? nullptr : state_[0].data();
  float* state1 = state_.size() < 2 ? nullptr : state_[1].data();
  segment_squares_[i] =
      apply_update(params, state0, state1, gradients, active, segments_[i], step_rule_);
}

std::pair<std::size_t, std::size_t> ParameterUpdate::segments_within(std::size_t begin,
                                                                     std::size_t end) const {
  std::size_t first = 0;
  while (first < segments_.size() && segments_[first].begin < begin) ++first;
  std::size_t last = first;
  while (last < segments_.size() && segments_[last].end <= end) ++last;
  return {first, last};
}

float ParameterUpdate::clip_scale(double norm) const {
  const double limit = settings_.clip_grad_norm;
  return norm > limit ? static_cast<float>(limit / (norm + 1e-6)) : 1.0f;
}

double ParameterUpdate::total_norm() const {
  double total = 0.0;
  for (double v : segment_squares_) total += v;
  return std::sqrt(total);
}

}  // namespace shardprop::detail
