// Library version and the BLAS configuration it runs on (benchmark reports print both).
#pragma once

#include <string>

namespace shardprop {

// "MAJOR.MINOR.PATCH" of the library.
std::string version();

// The OpenBLAS kernel family in use, as openblas_get_corename() reports it (for example
// "Haswell" or "SkylakeX"); OPENBLAS_CORETYPE in the environment overrides the detection.
std::string blas_core_name();

// Empty when the OpenBLAS kernels in use are the widest this CPU runs (or the check does not
// apply: not x86-64, or a core name it does not know). Otherwise one sentence naming the kernels,
// the CPU's wider instructions and the OPENBLAS_CORETYPE setting if any, or, when OpenBLAS chose
// by itself, the OPENBLAS_CORETYPE that selects the CPU's widest kernels: an AVX2 core on an
// AVX-512 CPU, for one, runs sgemm up to 1.8x slower, which every measurement should say.
std::string blas_kernel_note();

}  // namespace shardprop
