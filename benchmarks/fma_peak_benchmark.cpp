// The machine's single-precision FMA peak (BM_FmaPeak): the physical limit beside the GEMM-only
// roof in the reports. Each thread runs independent chains of fused multiply-adds on registers
// of the widest vectors the CPU has (AVX-512, else AVX2+FMA, else SSE multiply and add), enough
// chains to cover the FMA latency on two ports, so nothing but the FMA units limits it.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

// Chains per thread: FMA latency (4 cycles) × 2 ports needs 8; 12 leaves slack without spilling.
constexpr int kChains = 12;
constexpr std::int64_t kRoundsPerCall = std::int64_t{1} << 20;

struct PeakKernel {
  std::string isa;
  int lanes = 0;                                  // floats per vector
  float (*run)(std::int64_t rounds, float seed);  // kChains FMAs per round; returns a reduction
};

#if defined(__x86_64__)
__attribute__((target("avx512f"))) float run_avx512(std::int64_t rounds, float seed) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(seed + static_cast<float>(c));
  // x·a + b with a just below 1 and b tiny keeps every value finite and normal for any count.
  const __m512 a = _mm512_set1_ps(0.9999999f);
  const __m512 b = _mm512_set1_ps(1e-7f);
  for (std::int64_t r = 0; r < rounds; ++r) {
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  }
  __m512 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm512_add_ps(sum, acc[c]);
  // Stored and added by hand: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
}

__attribute__((target("avx2,fma"))) float run_avx2(std::int64_t rounds, float seed) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(seed + static_cast<float>(c));
  const __m256 a = _mm256_set1_ps(0.9999999f);
  const __m256 b = _mm256_set1_ps(1e-7f);
  for (std::int64_t r = 0; r < rounds; ++r) {
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  }
  __m256 sum = acc[0];
  for (int c = 1; c < kChains; ++c) sum = _mm256_add_ps(sum, acc[c]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0.0f;
  for (float v : lanes) total += v;
  return total;
}
#endif

// No FMA: a multiply and an add per lane, counted as 2 FLOPs like an FMA.
float run_portable(std::int64_t rounds, float seed) {
  float acc[kChains][4];
  for (int c = 0; c < kChains; ++c) std::fill_n(acc[c], 4, seed + static_cast<float>(c));
  for (std::int64_t r = 0; r < rounds; ++r) {
    for (int c = 0; c < kChains; ++c) {
      for (float& v : acc[c]) v = v * 0.9999999f + 1e-7f;
    }
  }
  float total = 0.0f;
  for (const auto& chain : acc) {
    for (float v : chain) total += v;
  }
  return total;
}

PeakKernel widest_kernel() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f")) return {"avx512", 16, run_avx512};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return {"avx2_fma", 8, run_avx2};
  }
#endif
  return {"portable", 4, run_portable};
}

// Args: threads. Every thread runs the kernel for the same rounds; the time is the slowest's.
void BM_FmaPeak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const PeakKernel kernel = widest_kernel();
  std::vector<float> results(static_cast<std::size_t>(threads));
  for (auto _ : state) {
    std::vector<std::thread> workers;
    workers.reserve(static_cast<std::size_t>(threads));
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        results[static_cast<std::size_t>(t)] = kernel.run(kRoundsPerCall, static_cast<float>(t));
      });
    }
    for (std::thread& w : workers) w.join();
    benchmark::DoNotOptimize(results.data());
  }
  const double flops_per_call =
      2.0 * kChains * kernel.lanes * static_cast<double>(kRoundsPerCall) * threads;
  state.counters["FLOP"] =
      benchmark::Counter(flops_per_call, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(kernel.isa);
}

// Thread counts as the step benchmarks use: 1, 2, 4, ... and the core count.
void thread_counts(benchmark::internal::Benchmark* b) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (int t = 1; t < cores; t *= 2) b->Arg(t);
  b->Arg(cores);
}

BENCHMARK(BM_FmaPeak)
    ->ArgName("threads")
    ->Apply(thread_counts)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
