// The threads a command runs on: --threads, or 0 for the cores this process may use. More
// threads than those are the user's explicit request, so TBB's limit on worker threads is
// raised to it; otherwise TBB would ignore the request and print a warning into the output.
#pragma once

#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <cstddef>
#include <optional>
#include <utility>

namespace shardprop::cli {

class CommandArena {
 public:
  explicit CommandArena(int threads) : arena_(threads > 0 ? threads : tbb::task_arena::automatic) {
    if (threads > tbb::info::default_concurrency()) {
      limit_.emplace(tbb::global_control::max_allowed_parallelism,
                     static_cast<std::size_t>(threads));
    }
  }

  template <class F>
  auto execute(F&& f) {
    return arena_.execute(std::forward<F>(f));
  }

 private:
  std::optional<tbb::global_control> limit_;  // before the arena: it must outlive its use
  tbb::task_arena arena_;
};

}  // namespace shardprop::cli
