// Element-wise kernels are compiled twice, for AVX2 and for the baseline x86-64, and the
// loader picks one per machine (GCC/Clang function multiversioning). Nothing is forced on the
// library's users, and the results do not depend on the choice: no FMA contraction, and the
// vector lanes run over independent elements (features), never reassociating a sum.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define SHARDPROP_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define SHARDPROP_MULTIVERSION
#endif
