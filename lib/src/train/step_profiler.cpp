// StepProfiler: the per-region idle time and the step's totals in wall-clock terms.
#include "train/step_profiler.hpp"

namespace shardprop::detail {

void StepProfiler::begin_step(std::span<ShardWorkspace> shards, int slots) {
  if (!on_) return;
  shards_ = shards;
  slots_ = slots;
  for (ShardWorkspace& ws : shards_) ws.seconds = {};
  busy_before_region_ = 0.0;
  idle_thread_seconds_ = 0.0;
  update_thread_seconds_ = 0.0;
  step_start_ = Clock::now();
}

void StepProfiler::begin_region() {
  if (on_) region_start_ = Clock::now();
}

void StepProfiler::add_update_in_region(double thread_seconds) {
  if (on_) update_thread_seconds_ += thread_seconds;
}

void StepProfiler::end_region() {
  if (!on_) return;
  const double wall = seconds_since(region_start_);
  const double busy_now = busy();
  // Slot-seconds the region offered, less those the shards used. Each shard's time lies within
  // the region, so on min(threads, shards) slots this is not negative (up to clock resolution).
  idle_thread_seconds_ += wall * slots_ - (busy_now - busy_before_region_);
  busy_before_region_ = busy_now;
}

void StepProfiler::end_step(std::int64_t rows) {
  ++profile_.steps;
  profile_.training_rows += rows;
  if (!on_) return;
  PhaseSeconds sum;
  for (const ShardWorkspace& ws : shards_) {
    sum.forward_gemm += ws.seconds.forward_gemm;
    sum.forward_elementwise += ws.seconds.forward_elementwise;
    sum.backward_gemm += ws.seconds.backward_gemm;
    sum.backward_elementwise += ws.seconds.backward_elementwise;
  }
  // Thread-seconds to wall-clock seconds: the convention StepProfile documents.
  const double per_slot = 1.0 / slots_;
  profile_.forward_gemm += sum.forward_gemm * per_slot;
  profile_.forward_elementwise += sum.forward_elementwise * per_slot;
  profile_.backward_gemm += sum.backward_gemm * per_slot;
  profile_.backward_elementwise += sum.backward_elementwise * per_slot;
  profile_.idle += idle_thread_seconds_ * per_slot;
  profile_.reduction_update += update_thread_seconds_ * per_slot;
  profile_.total += seconds_since(step_start_);
}

double StepProfiler::busy() const {
  double sum = 0.0;
  for (const ShardWorkspace& ws : shards_) sum += ws.seconds.busy();
  return sum + update_thread_seconds_;
}

}  // namespace shardprop::detail
