// Training across MPI ranks: the medium network's step at a fixed global batch (strong scaling)
// and at a fixed batch per rank (weak scaling), with the threads per rank as an argument, and
// for each the fraction of the step spent waiting in the gradient exchange and the bytes this
// rank sent per step. Run under mpirun (run_mpi_report.sh runs the grid of ranks × threads);
// every rank runs the same benchmarks with a fixed iteration count, so that the collective
// steps meet, and only rank 0 reports.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "blas_context.hpp"
#include "shardprop/communicator.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"

namespace {

constexpr int kInputs = 784;
constexpr int kClasses = 10;
constexpr int kIterations = 20;

shardprop::Communicator& world() {
  static shardprop::Communicator comm = shardprop::Communicator::mpi_world();
  return comm;
}

// args: threads per rank, rows per step (global batch), shard count, overlap (0 or 1).
void BM_DistributedStep(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int batch = static_cast<int>(state.range(1));
  const int shards = static_cast<int>(state.range(2));
  const bool overlap = state.range(3) != 0;
  const std::vector<int> hidden{1024, 1024};
  shardprop::Model model(shardprop::ModelSpec::mlp(
      kInputs, hidden, kClasses, shardprop::Activation::relu, shardprop::Loss::xent));
  model.initialize(1);
  shardprop::TrainerSettings settings;
  settings.threads = threads;
  settings.batch_size = batch;
  settings.shards = shards;
  settings.learning_rate = 0.001f;
  settings.overlap_exchange = overlap;
  shardprop::Trainer trainer(model, settings, world());
  std::mt19937 rng(3);
  std::normal_distribution<float> noise;
  std::vector<float> x(static_cast<std::size_t>(batch) * kInputs),
      t(static_cast<std::size_t>(batch));
  for (float& v : x) v = noise(rng);
  for (std::size_t r = 0; r < t.size(); ++r) t[r] = static_cast<float>(r % kClasses);
  trainer.step(x, t);  // warm-up: first-touch of every buffer
  const double wait_before = trainer.communication_seconds();
  const std::uint64_t bytes_before = trainer.communication_bytes();
  for (auto _ : state) trainer.step(x, t);
  const double steps = static_cast<double>(state.iterations());
  state.counters["samples_per_second"] =
      benchmark::Counter(static_cast<double>(batch) * steps, benchmark::Counter::kIsRate);
  state.counters["comm_wait_seconds_per_step"] =
      (trainer.communication_seconds() - wait_before) / steps;
  state.counters["comm_bytes_per_step"] =
      static_cast<double>(trainer.communication_bytes() - bytes_before) / steps;
  state.counters["ranks"] = world().size();
  state.counters["threads_per_rank"] = threads;
  state.counters["global_batch"] = batch;
  state.counters["overlap"] = overlap ? 1 : 0;
}

// Reports nothing: the ranks other than 0 run the same benchmarks silently.
class SilentReporter : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const int ranks = world().size();
  // Strong scaling: 256 rows per step in all; weak: 256 rows per rank. Four shards (or one per
  // rank, if more) in every configuration, so every configuration trains the same weights.
  for (const int threads : {1, 2}) {
    const int shards = ranks > 4 ? ranks : 4;
    // The exchange during the backward pass, and after it (the same weights).
    for (const int overlap : {1, 0}) {
      if (ranks == 1 && overlap == 0) continue;  // one rank exchanges nothing
      benchmark::RegisterBenchmark("BM_DistributedStep/strong", BM_DistributedStep)
          ->Args({threads, 256, shards, overlap})
          ->Iterations(kIterations)
          ->Repetitions(5)
          ->ReportAggregatesOnly(true)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark("BM_DistributedStep/weak", BM_DistributedStep)
        ->Args({threads, 256 * ranks, 4 * ranks, 1})
        ->Iterations(kIterations)
        ->Repetitions(5)
        ->ReportAggregatesOnly(true)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  shardprop::bench::add_blas_context();
  benchmark::AddCustomContext("mpi_ranks", std::to_string(ranks));
  if (world().rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    // --benchmark_out must not be written by two ranks: the silent reporter for both outputs.
    SilentReporter silent, silent_file;
    benchmark::RunSpecifiedBenchmarks(&silent, &silent_file);
  }
  benchmark::Shutdown();
  return 0;
}
