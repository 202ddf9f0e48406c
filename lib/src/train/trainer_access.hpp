// What a checkpoint needs of a Trainer beyond its public API: the optimizer's buffers and the
// epoch and step counters, to save them and to restore them. Only io/checkpoint.cpp (and tests)
// use this; the Trainer's public header does not show it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shardprop/trainer.hpp"

namespace shardprop::detail {

class TrainerAccess {
 public:
  // The optimizer's state: one buffer per slot laid out like Model::parameters() (only the
  // trained tensors' ranges are meaningful). Slot names follow torch.optim's state keys:
  // "momentum_buffer" (SGD with momentum), "exp_avg" and "exp_avg_sq" (Adam); none for SGD.
  static std::vector<std::string> optimizer_state_names(const Trainer& trainer);
  // Throws Error for a slot that does not exist.
  static std::span<float> optimizer_state(Trainer& trainer, int slot);
  static std::span<const float> optimizer_state(const Trainer& trainer, int slot);
  // Continue counting from a checkpoint: the next epoch is `epochs` (so its shuffle, learning
  // rate and dropout masks are those an uninterrupted run would use). Throws Error if negative.
  static void set_progress(Trainer& trainer, int epochs, std::int64_t steps);
  // Continue an unfinished epoch from a checkpoint taken inside it: the next train_epoch skips
  // position.step minibatches and adds to position's sums. Throws Error if a count is negative.
  static void set_epoch_position(Trainer& trainer, const EpochPosition& position);
};

}  // namespace shardprop::detail
