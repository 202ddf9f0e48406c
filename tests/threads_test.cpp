// Training steps that really run on 1, 2 and 4 threads: sharded batch norm (whose statistics are
// combined across shards between phases), the gradient reduction over shards and the parallel
// SGD update, all in one step. Written for the tsan preset (docs/reliability.md), where every
// interleaving these steps take is checked for data races; the results must also be bitwise those
// of one thread.
#include <catch2/catch.hpp>

#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_scheduler_observer.h>

#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"

using namespace shardprop;

namespace {

constexpr int kInputs = 128;
constexpr int kClasses = 10;
constexpr int kRows = 128;
constexpr int kShards = 4;
// Steps before the check: enough for an arena's workers to join on a loaded machine; the loop
// stops earlier once they have.
constexpr int kMaxSteps = 200;
constexpr int kMinSteps = 3;

// 128 → 256 → bn → relu → 128 → bn → relu → 10: above the trainer's 64K-parameter threshold for
// the parallel update, with two batch norms, so each step combines statistics across shards.
ModelSpec bn_spec() {
  ModelSpec spec;
  spec.inputs = kInputs;
  spec.loss = Loss::xent;
  spec.layers = {DenseSpec{256},     BatchNormSpec{}, ActivationSpec{Activation::relu},
                 DenseSpec{128},     BatchNormSpec{}, ActivationSpec{Activation::relu},
                 DenseSpec{kClasses}};
  return spec;
}

struct Batch {
  std::vector<float> x, t;
};

Batch batch_for_step(int step) {
  std::mt19937 rng(static_cast<unsigned>(1000 + step));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Batch b;
  for (int i = 0; i < kRows * kInputs; ++i) b.x.push_back(normal(rng));
  for (int r = 0; r < kRows; ++r) b.t.push_back(static_cast<float>(rng() % kClasses));
  return b;
}

TrainerSettings settings_for(int threads) {
  TrainerSettings s;
  s.threads = threads;
  s.shards = kShards;
  s.batch_size = kRows;
  s.learning_rate = 0.05f;
  s.weight_decay = 1e-4f;
  return s;
}

// Records the distinct worker threads that join one arena.
class WorkerCounter : public tbb::task_scheduler_observer {
 public:
  explicit WorkerCounter(tbb::task_arena& arena) : tbb::task_scheduler_observer(arena) {
    observe(true);
  }
  ~WorkerCounter() override { observe(false); }
  WorkerCounter(const WorkerCounter&) = delete;
  WorkerCounter& operator=(const WorkerCounter&) = delete;

  void on_scheduler_entry(bool is_worker) override {
    if (!is_worker) return;
    const std::lock_guard lock(mutex_);
    workers_.insert(std::this_thread::get_id());
  }
  int workers() const {
    const std::lock_guard lock(mutex_);
    return static_cast<int>(workers_.size());
  }

 private:
  mutable std::mutex mutex_;
  std::set<std::thread::id> workers_;
};

std::vector<float> trained_on_one_thread(int steps) {
  Model model(bn_spec());
  model.initialize(7);
  Trainer trainer(model, settings_for(1));
  for (int step = 0; step < steps; ++step) {
    const Batch b = batch_for_step(step);
    trainer.step(b.x, b.t);
  }
  return {model.parameters().begin(), model.parameters().end()};
}

}  // namespace

TEST_CASE(
    "Steps with batch norm, the shard reduction and the parallel update on 1, 2 and 4 "
    "threads give one thread's bits",
    "[threads][batchnorm][determinism]") {
  const int threads = GENERATE(1, 2, 4);
  CAPTURE(threads);
  // TBB caps its workers at the core count by default; the test lets the arena have all the
  // threads it asks for, so 4 threads interleave on a 2-core machine too.
  const tbb::global_control allow(tbb::global_control::max_allowed_parallelism, 4);
  tbb::task_arena arena(threads);
  arena.initialize();
  WorkerCounter counter(arena);

  Model model(bn_spec());
  model.initialize(7);
  const std::vector<float> initial(model.parameters().begin(), model.parameters().end());
  // threads = 0: the trainer runs in the caller's arena, the one observed here.
  Trainer trainer(model, settings_for(0));
  int steps = 0;
  arena.execute([&] {
    while (steps < kMaxSteps && (steps < kMinSteps || counter.workers() < threads - 1)) {
      const Batch b = batch_for_step(steps);
      trainer.step(b.x, b.t);
      ++steps;
    }
  });
  CAPTURE(steps);
  // Every thread of the arena took part: the caller and threads - 1 workers.
  REQUIRE(counter.workers() == threads - 1);

  const std::span<const float> p = model.parameters();
  REQUIRE(std::memcmp(p.data(), initial.data(), p.size_bytes()) != 0);  // training happened
  const std::vector<float> reference = trained_on_one_thread(steps);
  REQUIRE(reference.size() == p.size());
  CHECK(std::memcmp(p.data(), reference.data(), p.size_bytes()) == 0);
}
