// Matrix products for the layers: the only place that talks to OpenBLAS. Row-major,
// C[m,n] = alpha · op(A)[m,k] · op(B)[k,n] + beta · C.
#pragma once

namespace shardprop::detail {

enum class Transpose { no, yes };

// Tiny products (m·n·k ≤ kSmallGemmVolume) run a plain loop: for the textbook-sized networks a
// BLAS call costs more than the arithmetic. The choice depends on shapes only, so results stay
// reproducible for a fixed shard plan.
inline constexpr long kSmallGemmVolume = 4096;

void gemm(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha, const float* a,
          int lda, const float* b, int ldb, float beta, float* c, int ldc);

// The naive triple loop, kept as the tests' reference. Accumulates in double.
void gemm_reference(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha,
                    const float* a, int lda, const float* b, int ldb, float beta, float* c,
                    int ldc);

// Sets OpenBLAS to one thread for the lifetime of the guard and restores the caller's setting
// afterwards: parallelism comes from TBB tasks, and a threaded BLAS inside each task would
// oversubscribe the cores.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_;
};

}  // namespace shardprop::detail
