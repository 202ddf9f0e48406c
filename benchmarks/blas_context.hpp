// What every step benchmark's report states about the machine's BLAS: the library version, the
// OpenBLAS kernel family in use, and the environment settings that change it (a peer is only
// comparable under the same ones).
#pragma once

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "shardprop/version.hpp"

namespace shardprop::bench {

inline std::string environment_setting(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "(unset)";
}

inline void add_blas_context() {
  benchmark::AddCustomContext("shardprop_version", shardprop::version());
  benchmark::AddCustomContext("openblas_core", shardprop::blas_core_name());
  benchmark::AddCustomContext("OPENBLAS_CORETYPE", environment_setting("OPENBLAS_CORETYPE"));
  benchmark::AddCustomContext("OPENBLAS_NUM_THREADS", environment_setting("OPENBLAS_NUM_THREADS"));
  // Non-empty when the kernels are narrower than the CPU's: every number below is then low.
  benchmark::AddCustomContext("blas_kernel_note", shardprop::blas_kernel_note());
}

}  // namespace shardprop::bench
