// Whether OpenBLAS runs kernels narrower than the CPU supports. OpenBLAS picks its kernels from
// the CPU at load time, but OPENBLAS_CORETYPE (set by some images and job scripts) or an old
// OpenBLAS that does not know the CPU can hold it to older ones, silently and at a large cost.
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <string>
#include <string_view>

#include "shardprop/version.hpp"

namespace shardprop {
namespace {

// The widest vector instructions a kernel family or a CPU uses.
enum class VectorLevel { unknown, sse, avx, avx2, avx512 };

std::string_view level_name(VectorLevel level) {
  switch (level) {
    case VectorLevel::sse:
      return "SSE";
    case VectorLevel::avx:
      return "AVX";
    case VectorLevel::avx2:
      return "AVX2";
    case VectorLevel::avx512:
      return "AVX-512";
    case VectorLevel::unknown:
      break;
  }
  return "unknown";
}

struct CoreLevel {
  std::string_view core;  // openblas_get_corename(), lower case
  VectorLevel level;
};

// OpenBLAS's x86-64 core names (driver/others/dynamic.c) by the widest instructions their
// sgemm kernels use.
constexpr std::array kCoreLevels{
    CoreLevel{"sapphirerapids", VectorLevel::avx512},
    CoreLevel{"cooperlake", VectorLevel::avx512},
    CoreLevel{"skylakex", VectorLevel::avx512},
    CoreLevel{"zen", VectorLevel::avx2},
    CoreLevel{"haswell", VectorLevel::avx2},
    CoreLevel{"excavator", VectorLevel::avx2},
    CoreLevel{"steamroller", VectorLevel::avx},
    CoreLevel{"piledriver", VectorLevel::avx},
    CoreLevel{"bulldozer", VectorLevel::avx},
    CoreLevel{"sandybridge", VectorLevel::avx},
    CoreLevel{"nehalem", VectorLevel::sse},
    CoreLevel{"barcelona", VectorLevel::sse},
    CoreLevel{"core2", VectorLevel::sse},
    CoreLevel{"penryn", VectorLevel::sse},
    CoreLevel{"dunnington", VectorLevel::sse},
    CoreLevel{"atom", VectorLevel::sse},
    CoreLevel{"prescott", VectorLevel::sse},
    CoreLevel{"opteron", VectorLevel::sse},
};

// The core whose kernels use a vector level's instructions (for OPENBLAS_CORETYPE).
std::string_view core_for(VectorLevel level) {
  switch (level) {
    case VectorLevel::avx512:
      return "SkylakeX";
    case VectorLevel::avx2:
      return "Haswell";
    case VectorLevel::avx:
      return "Sandybridge";
    case VectorLevel::sse:
    case VectorLevel::unknown:
      break;
  }
  return "Nehalem";
}

VectorLevel core_level(std::string core) {
  std::transform(core.begin(), core.end(), core.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const CoreLevel& c : kCoreLevels) {
    if (c.core == core) return c.level;
  }
  return VectorLevel::unknown;
}

VectorLevel cpu_level() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // The AVX-512 subsets OpenBLAS's SkylakeX kernels need.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return VectorLevel::avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return VectorLevel::avx2;
  if (__builtin_cpu_supports("avx")) return VectorLevel::avx;
  return VectorLevel::sse;
#else
  return VectorLevel::unknown;
#endif
}

}  // namespace

std::string blas_kernel_note() {
  const std::string core = blas_core_name();
  const VectorLevel used = core_level(core);
  const VectorLevel cpu = cpu_level();
  if (used == VectorLevel::unknown || cpu == VectorLevel::unknown || used >= cpu) return "";
  std::string note = "OpenBLAS runs its " + core + " kernels (" + std::string(level_name(used)) +
                     ") on a CPU with " + std::string(level_name(cpu));
  if (const char* forced = std::getenv("OPENBLAS_CORETYPE"); forced != nullptr && *forced != 0) {
    note += " because OPENBLAS_CORETYPE=" + std::string(forced) +
            " is set, so sgemm can be up to 2x slower: unset it to let OpenBLAS choose";
  } else {
    // OpenBLAS did not recognize the CPU and runs its fallback; the kernels for the CPU's widest
    // vectors can be asked for by name (Debian's OpenBLAS carries them all).
    note +=
        ", so sgemm can be up to 2x slower: a newer OpenBLAS may know this CPU, or "
        "OPENBLAS_CORETYPE=" +
        std::string(core_for(cpu)) + " selects its " + std::string(level_name(cpu)) + " kernels";
  }
  return note;
}

}  // namespace shardprop
