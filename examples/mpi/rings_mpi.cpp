// Trains across the ranks of an MPI job: every rank reads only its part of a CSV file, the ranks
// agree on the standardization and hold out the same validation rows, and the trained weights
// are those one process would train. Exits non-zero unless 95% of the held-out rows of two
// concentric rings are classified right. Run: mpirun -np 2 ./rings_mpi
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "shardprop/communicator.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"

namespace {

// Points on a ring of radius 0.5 (inner) or 1.0 (outer), with a little noise.
void write_rings(const char* path, int rows) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> angle(0.0, 6.283185307179586), jitter(-0.1, 0.1);
  std::ofstream out(path);
  out << "x,y,ring\n";
  for (int i = 0; i < rows; ++i) {
    const bool outer = i % 2 == 1;
    const double a = angle(rng), r = (outer ? 1.0 : 0.5) + jitter(rng);
    out << r * std::cos(a) << ',' << r * std::sin(a) << ',' << (outer ? "outer" : "inner") << '\n';
  }
}

int train(const shardprop::Communicator& comm) {
  shardprop::CsvOptions csv;
  csv.target_kind = shardprop::TargetKind::classes;  // "inner", "outer" → classes 0, 1
  const shardprop::DatasetPart part = shardprop::read_csv_part("rings.csv", csv, comm);
  auto [train, test] = shardprop::split_validation(part, 0.2, /*seed=*/7, comm);
  const shardprop::Standardization z = shardprop::fit_standardization(train, comm);
  z.apply(train.rows);
  z.apply(test.rows);

  shardprop::ModelSpec spec;
  spec.inputs = 2;
  spec.layers = shardprop::parse_layers("dense(32) relu dense(32) relu dense(2)");
  spec.loss = shardprop::Loss::xent;
  shardprop::Model model(spec);  // the same model and settings on every rank
  model.initialize(1);
  shardprop::TrainerSettings settings;
  settings.threads = 1;
  settings.batch_size = 64;  // global: the ranks share every minibatch
  settings.shards = 4;       // fixed, so any rank count up to 4 trains the same weights
  settings.learning_rate = 0.1f;
  settings.momentum = 0.9f;
  shardprop::Trainer trainer(model, settings, comm);
  for (int epoch = 0; epoch < 30; ++epoch) trainer.train_epoch(train);
  const shardprop::Metrics m = trainer.evaluate(test);
  if (comm.rank() == 0) {
    std::printf("%d ranks: %.1f%% of %lld held-out rows right (needs 95%%)\n", comm.size(),
                100.0 * m.accuracy, static_cast<long long>(m.rows));
  }
  return m.accuracy >= 0.95 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) write_rings("rings.csv", 4000);
  MPI_Barrier(MPI_COMM_WORLD);
  int status = 1;
  try {
    // The library works on its own duplicate of the host's communicator.
    status = train(shardprop::Communicator::mpi(MPI_Comm_c2f(MPI_COMM_WORLD)));
  } catch (const shardprop::Error& e) {  // CollectiveError: the same on every rank
    if (rank == 0) std::fprintf(stderr, "rings_mpi: %s\n", e.what());
  }
  MPI_Finalize();
  return status;
}
