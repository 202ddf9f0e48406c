// The trainer's StepProfile (shardprop/trainer.hpp): counts every step's and evaluation's rows,
// and with profile_phases times the parts of a step. The shards time their own passes into
// their workspaces (nn/network.hpp); this adds them up with the driving thread's parts.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "nn/network.hpp"
#include "shardprop/trainer.hpp"

namespace shardprop::detail {

class StepProfiler {
 public:
  // on: time the steps (else only count). The shards' workspaces must be built with
  // ShardWorkspace::profile set to the same value.
  explicit StepProfiler(bool on) : on_(on) {}

  bool on() const { return on_; }
  const StepProfile& profile() const { return profile_; }
  void reset() { profile_ = {}; }
  void add_evaluated_rows(std::int64_t rows) { profile_.evaluated_rows += rows; }

  // A step begins whose local shards (their seconds zeroed here) run on `slots` worker slots.
  void begin_step(std::span<ShardWorkspace> shards, int slots);
  // Around each parallel region of the step.
  void begin_region();
  void end_region();
  // Thread-seconds of the optimizer update that ran as tasks within the region now ending
  // (before end_region): busy time of the region, reported as reduction_update.
  void add_update_in_region(double thread_seconds);
  // Runs f() on the driving thread and adds its wall time to `part`.
  template <class F>
  void time(double StepProfile::*part, F&& f) {
    if (!on_) {
      f();
      return;
    }
    const Clock::time_point start = Clock::now();
    f();
    profile_.*part += seconds_since(start);
  }
  // The step completed; `rows` of it ran on this rank.
  void end_step(std::int64_t rows);

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }
  double busy() const;  // the shards' pass seconds so far this step, summed

  bool on_;
  StepProfile profile_;
  // The step in progress.
  std::span<ShardWorkspace> shards_;
  int slots_ = 1;
  Clock::time_point step_start_{}, region_start_{};
  double busy_before_region_ = 0.0;
  double idle_thread_seconds_ = 0.0;
  double update_thread_seconds_ = 0.0;
};

}  // namespace shardprop::detail
