// Library version and the BLAS configuration it runs on (benchmark reports print both).
#pragma once

#include <string>

namespace shardprop {

// "MAJOR.MINOR.PATCH" of the library.
std::string version();

// The OpenBLAS kernel family in use, as openblas_get_corename() reports it (for example
// "Haswell" or "SkylakeX"); OPENBLAS_CORETYPE in the environment overrides the detection.
std::string blas_core_name();

}  // namespace shardprop
