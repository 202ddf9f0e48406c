// Failing together: a step that can fail on one rank (bad input in its part of a file, a
// write on rank 0) is run through agree(), so that every rank learns of the failure and throws
// the same CollectiveError instead of waiting forever in the next collective call.
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "base/communicator.hpp"
#include "shardprop/communicator.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {

// Throws CollectiveError on every rank when `failure` (empty: none) is non-empty on any rank,
// naming the first failing rank when there are several. Collective.
void agree_on_failure(Communicator& comm, const std::string& failure);

// Runs f, which must not call collective operations itself (a rank that failed early would
// leave the others waiting in them), then agrees on its outcome. In a single process the
// original exception propagates unchanged.
template <class F>
void agree(Communicator& comm, F&& f) {
  if (comm.size() == 1 && !comm.distributed()) {
    std::forward<F>(f)();
    return;
  }
  std::string failure;
  try {
    std::forward<F>(f)();
  } catch (const std::exception& e) {
    failure = e.what();
    if (failure.empty()) failure = "unknown error";
  }
  agree_on_failure(comm, failure);
}

struct CommunicatorAccess {
  static Communicator& of(const shardprop::Communicator& c);
  static std::shared_ptr<Communicator> shared(const shardprop::Communicator& c);
};

}  // namespace shardprop::detail
