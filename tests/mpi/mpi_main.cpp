// The MPI tests' main: MPI is initialized (through the library, as an application would) before
// Catch2 runs, and every rank runs every test case, so collective calls meet. Every rank
// reports; any rank's failure makes mpirun's exit status non-zero.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "shardprop/communicator.hpp"

int main(int argc, char** argv) {
  const shardprop::Communicator world = shardprop::Communicator::mpi_world();
  (void)world;
  return Catch::Session().run(argc, argv);
}
