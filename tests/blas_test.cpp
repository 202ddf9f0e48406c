// detail::gemm against the naive double-accumulating reference, on both of its paths (the plain
// loop for tiny products and the OpenBLAS call), every transpose combination, alpha/beta and
// padded leading dimensions. Leaves out SingleThreadedBlas (a thread-count setting, not math).
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "base/blas.hpp"

namespace {

using shardprop::detail::gemm;
using shardprop::detail::gemm_reference;
using shardprop::detail::kSmallGemmVolume;
using shardprop::detail::Transpose;

// Uniform in [lo, hi) from 24 random bits: the same numbers with every standard library.
float uniform(std::mt19937& rng, float lo, float hi) {
  return lo + (hi - lo) * static_cast<float>(rng() >> 8) * (1.0f / 16777216.0f);
}

// A row-major matrix of `rows` × `cols` stored with leading dimension `ld` ≥ cols. The padding
// columns hold NaN, so a kernel that reads them poisons its result and the comparison fails.
struct Stored {
  int rows, cols, ld;
  std::vector<float> data;
  Stored(int r, int c, int pad, std::mt19937& rng)
      : rows(r),
        cols(c),
        ld(c + pad),
        data(static_cast<std::size_t>(r) * static_cast<std::size_t>(c + pad),
             std::numeric_limits<float>::quiet_NaN()) {
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < cols; ++j) data[index(i, j)] = uniform(rng, -1.0f, 1.0f);
    }
  }
  std::size_t index(int i, int j) const {
    return static_cast<std::size_t>(i) * static_cast<std::size_t>(ld) + static_cast<std::size_t>(j);
  }
};

const char* name(Transpose t) { return t == Transpose::yes ? "T" : "N"; }

// Element (i, j) of op(X).
float op_at(Transpose t, const Stored& x, int i, int j) {
  return t == Transpose::yes ? x.data[x.index(j, i)] : x.data[x.index(i, j)];
}

// Runs gemm and gemm_reference on the same inputs and checks every element of C against the
// reference, and that C's padding is untouched. The tolerance is the textbook bound for a
// float dot product of length k, |error| ≤ k·u·(|alpha|·Σ|a||b| + |beta||c|) with u =
// FLT_EPSILON/2, doubled for safety; BLAS kernels reorder and fuse the sums, so no tighter claim
// holds.
void check_gemm(Transpose trans_a, Transpose trans_b, int m, int n, int k, float alpha, float beta,
                int pad, std::uint32_t seed) {
  CAPTURE(name(trans_a), name(trans_b), m, n, k, alpha, beta, pad, seed);
  std::mt19937 rng(seed);
  // Stored shapes: op(A) is [m, k], op(B) is [k, n].
  const Stored a = trans_a == Transpose::yes ? Stored(k, m, pad, rng) : Stored(m, k, pad, rng);
  const Stored b = trans_b == Transpose::yes ? Stored(n, k, pad, rng) : Stored(k, n, pad, rng);
  Stored c(m, n, pad, rng);
  const float sentinel = 12345.0f;  // in C's padding: must survive both calls
  for (int i = 0; i < m; ++i) {
    for (int j = n; j < c.ld; ++j) c.data[c.index(i, j)] = sentinel;
  }
  if (beta == 0.0f) {
    // With beta = 0 the old contents of C must be ignored, even NaN (the layers rely on it for
    // gradient buffers they overwrite).
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < n; ++j) c.data[c.index(i, j)] = std::numeric_limits<float>::quiet_NaN();
    }
  }
  std::vector<float> expected = c.data;
  std::vector<float> actual = c.data;

  gemm_reference(trans_a, trans_b, m, n, k, alpha, a.data.data(), a.ld, b.data.data(), b.ld, beta,
                 expected.data(), c.ld);
  gemm(trans_a, trans_b, m, n, k, alpha, a.data.data(), a.ld, b.data.data(), b.ld, beta,
       actual.data(), c.ld);

  int mismatches = 0;
  bool padding_intact = true;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double magnitude = beta == 0.0f ? 0.0 : std::fabs(beta) * std::fabs(c.data[c.index(i, j)]);
      for (int p = 0; p < k; ++p) {
        magnitude += std::fabs(alpha) * std::fabs(op_at(trans_a, a, i, p)) *
                     std::fabs(op_at(trans_b, b, p, j));
      }
      const double bound = 2.0 * (k + 2) * (FLT_EPSILON / 2.0) * magnitude + 1e-30;
      const float want = expected[c.index(i, j)];
      const float got = actual[c.index(i, j)];
      // One assertion per mismatch rather than per element: the big shapes have 10⁴ elements.
      const auto within = Catch::Matchers::WithinAbs(want, bound);
      if (!std::isfinite(want) || !within.match(got)) {
        CAPTURE(i, j);
        CHECK(std::isfinite(want));
        CHECK_THAT(got, within);
        if (++mismatches > 5) FAIL("more than 5 elements differ from the reference");
      }
    }
    for (int j = n; j < c.ld; ++j) {
      padding_intact = padding_intact && actual[c.index(i, j)] == sentinel;
    }
  }
  CHECK(mismatches == 0);
  CHECK(padding_intact);
}

}  // namespace

TEST_CASE("gemm computes alpha·op(A)·op(B) + beta·C like the reference on the plain-loop path",
          "[blas]") {
  const auto trans_a = GENERATE(Transpose::no, Transpose::yes);
  const auto trans_b = GENERATE(Transpose::no, Transpose::yes);
  // (m, n, k) with m·n·k ≤ kSmallGemmVolume, including the boundary volume itself.
  const auto shape = GENERATE(
      table<int, int, int>({{1, 1, 1}, {3, 4, 5}, {7, 2, 9}, {2, 3, 1}, {16, 16, 16}, {5, 11, 3}}));
  const int m = std::get<0>(shape), n = std::get<1>(shape), k = std::get<2>(shape);
  REQUIRE(static_cast<long>(m) * n * k <= kSmallGemmVolume);
  const auto coefficients =
      GENERATE(table<float, float>({{1.0f, 0.0f}, {0.5f, 1.0f}, {-1.25f, 0.75f}, {2.0f, -0.5f}}));
  const int pad = GENERATE(0, 3);
  check_gemm(trans_a, trans_b, m, n, k, std::get<0>(coefficients), std::get<1>(coefficients), pad,
             static_cast<std::uint32_t>(m * 1000 + n * 100 + k));
}

TEST_CASE("gemm computes alpha·op(A)·op(B) + beta·C like the reference on the BLAS path",
          "[blas]") {
  const auto trans_a = GENERATE(Transpose::no, Transpose::yes);
  const auto trans_b = GENERATE(Transpose::no, Transpose::yes);
  // m·n·k > kSmallGemmVolume; odd sizes so BLAS kernels hit their edge cases, (16, 16, 17) is
  // the first volume past the loop's threshold, (1, 300, 40) a single-row product.
  const auto shape = GENERATE(table<int, int, int>(
      {{16, 16, 17}, {64, 48, 40}, {129, 65, 33}, {23, 300, 9}, {1, 300, 40}, {70, 1, 80}}));
  const int m = std::get<0>(shape), n = std::get<1>(shape), k = std::get<2>(shape);
  REQUIRE(static_cast<long>(m) * n * k > kSmallGemmVolume);
  const auto coefficients =
      GENERATE(table<float, float>({{1.0f, 0.0f}, {0.5f, 1.0f}, {-1.25f, 0.75f}}));
  const int pad = GENERATE(0, 5);
  check_gemm(trans_a, trans_b, m, n, k, std::get<0>(coefficients), std::get<1>(coefficients), pad,
             static_cast<std::uint32_t>(m * 1000 + n * 100 + k));
}

TEST_CASE("gemm with k = 0 scales C by beta and with m = 0 or n = 0 touches nothing", "[blas]") {
  std::mt19937 rng(7);
  const float a[1] = {std::numeric_limits<float>::quiet_NaN()};
  const float b[1] = {std::numeric_limits<float>::quiet_NaN()};
  SECTION("k = 0 leaves beta·C") {
    std::vector<float> c(12);
    for (float& v : c) v = uniform(rng, -1.0f, 1.0f);
    const std::vector<float> before = c;
    gemm(Transpose::no, Transpose::no, 3, 4, 0, 2.0f, a, 1, b, 4, 0.5f, c.data(), 4);
    for (std::size_t i = 0; i < c.size(); ++i) {
      CAPTURE(i);
      CHECK_THAT(c[i], Catch::Matchers::WithinRel(0.5f * before[i], 1e-6f));
    }
  }
  SECTION("an empty product leaves C alone") {
    std::vector<float> c = {1.0f, 2.0f, 3.0f};
    gemm(Transpose::no, Transpose::yes, 0, 3, 5, 1.0f, a, 5, b, 5, 0.0f, c.data(), 3);
    gemm(Transpose::yes, Transpose::no, 3, 0, 5, 1.0f, a, 3, b, 1, 0.0f, c.data(), 1);
    CHECK(c == std::vector<float>{1.0f, 2.0f, 3.0f});
  }
}
