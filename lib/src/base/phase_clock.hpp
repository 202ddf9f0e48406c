// Where one shard's training pass spends its time, for the trainer's opt-in step profile
// (TrainerSettings::profile_phases). Measures only; what the totals mean is StepProfile's
// business (shardprop/trainer.hpp).
#pragma once

#include <chrono>

namespace shardprop::detail {

// Thread-seconds of one shard's pass by kind of work.
struct PhaseSeconds {
  double forward_gemm = 0.0;
  double forward_elementwise = 0.0;
  double backward_gemm = 0.0;
  double backward_elementwise = 0.0;

  double busy() const {
    return forward_gemm + forward_elementwise + backward_gemm + backward_elementwise;
  }
};

// A stopwatch that charges the time since its previous lap (or its construction) to one kind
// of work, so consecutive laps tile the pass with one clock read per boundary. Built on a
// null PhaseSeconds it reads no clock at all: a lap is then one pointer check, which is all
// that profiling costs when it is off.
class PhaseClock {
 public:
  using Clock = std::chrono::steady_clock;
  using Kind = double PhaseSeconds::*;

  explicit PhaseClock(PhaseSeconds* seconds) : seconds_(seconds) {
    if (seconds_ != nullptr) last_ = Clock::now();
  }

  void lap(Kind kind) {
    if (seconds_ == nullptr) return;
    const Clock::time_point now = Clock::now();
    seconds_->*kind += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  PhaseSeconds* seconds_;
  Clock::time_point last_{};
};

}  // namespace shardprop::detail
