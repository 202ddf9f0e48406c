// The one file that includes cblas.h.
#include "base/blas.hpp"

#include <cblas.h>

#include <string>

#include "shardprop/version.hpp"

namespace shardprop::detail {
namespace {

CBLAS_TRANSPOSE to_cblas(Transpose t) { return t == Transpose::yes ? CblasTrans : CblasNoTrans; }

// Element (i, j) of op(X) for a row-major X with leading dimension ld.
inline float at(Transpose t, const float* x, int ld, int i, int j) {
  return t == Transpose::yes ? x[static_cast<long>(j) * ld + i] : x[static_cast<long>(i) * ld + j];
}

}  // namespace

void gemm(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha, const float* a,
          int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (m == 0 || n == 0) return;
  if (static_cast<long>(m) * n * k <= kSmallGemmVolume) {
    for (int i = 0; i < m; ++i) {
      float* c_row = c + static_cast<long>(i) * ldc;
      for (int j = 0; j < n; ++j) {
        float sum = 0.0f;
        for (int p = 0; p < k; ++p) sum += at(trans_a, a, lda, i, p) * at(trans_b, b, ldb, p, j);
        c_row[j] = beta == 0.0f ? alpha * sum : alpha * sum + beta * c_row[j];
      }
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, to_cblas(trans_a), to_cblas(trans_b), m, n, k, alpha, a, lda, b, ldb,
              beta, c, ldc);
}

void gemm_reference(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha,
                    const float* a, int lda, const float* b, int ldb, float beta, float* c,
                    int ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double sum = 0.0;
      for (int p = 0; p < k; ++p) {
        sum += static_cast<double>(at(trans_a, a, lda, i, p)) * at(trans_b, b, ldb, p, j);
      }
      float& out = c[static_cast<long>(i) * ldc + j];
      out =
          static_cast<float>(alpha * sum + (beta == 0.0f ? 0.0 : beta * static_cast<double>(out)));
    }
  }
}

SingleThreadedBlas::SingleThreadedBlas() : previous_(openblas_get_num_threads()) {
  if (previous_ != 1) openblas_set_num_threads(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (previous_ != 1) openblas_set_num_threads(previous_);
}

}  // namespace shardprop::detail

namespace shardprop {

std::string blas_core_name() { return openblas_get_corename(); }

}  // namespace shardprop
