// A library built without MPI (SHARDPROP_WITH_MPI off, or MPI not found): asking for an MPI
// communicator is an error that says so, and everything else runs in this process alone.
#include "base/communicator.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

[[noreturn]] void unavailable() {
  throw Error(
      "MPI: this shardprop was built without MPI (configure with SHARDPROP_WITH_MPI=ON and "
      "libopenmpi-dev installed)");
}

}  // namespace

bool mpi_built() { return false; }
std::shared_ptr<Communicator> mpi_communicator(std::int64_t) { unavailable(); }
std::shared_ptr<Communicator> mpi_world() { unavailable(); }

}  // namespace shardprop::detail
