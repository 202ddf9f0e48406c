// Element-wise kernels are compiled three times, for AVX-512 (x86-64-v4), AVX2 and the
// baseline x86-64, and the loader picks one per machine (GCC function multiversioning).
// Nothing is forced on the library's users, and the results do not depend on the choice: the
// library is built with -ffp-contract=off (AVX-512 brings FMA, which would otherwise fuse
// a·b + c differently per clone), and the vector lanes run over independent elements
// (features), never reassociating a sum.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define SHARDPROP_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define SHARDPROP_MULTIVERSION
#endif
