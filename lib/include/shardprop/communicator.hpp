// Where training runs: in this process alone (the default), or on the ranks of an MPI
// communicator, each rank taking a contiguous group of the minibatch's shards. Results do not
// depend on the number of ranks (see docs/distributed.md). This header does not need mpi.h:
// an MPI communicator is passed by its Fortran handle, MPI_Comm_c2f(comm), which C, C++ and
// Fortran hosts all have.
#pragma once

#include <cstdint>
#include <memory>

#include "shardprop/error.hpp"

namespace shardprop {

namespace detail {
class Communicator;
struct CommunicatorAccess;
}  // namespace detail

// Thrown alike on every rank when a collective operation failed on one of them; the message
// names the first failing rank ("rank R: ...") when there are several. A host can catch it on
// every rank and go on: no rank is left waiting.
class CollectiveError : public Error {
 public:
  using Error::Error;
  ~CollectiveError() override;
};

// Copies share one communicator. Thread safety: one thread at a time uses a communicator (and
// every Trainer or collective call made with it).
class Communicator {
 public:
  // This process alone: rank 0 of 1, no MPI.
  Communicator();

  // A duplicate of the host's communicator (so the library's messages never meet the host's),
  // freed with the last copy. MPI must be initialized. Throws Error when the library was built
  // without MPI. From C++: Communicator::mpi(MPI_Comm_c2f(MPI_COMM_WORLD)).
  static Communicator mpi(std::int64_t fortran_handle);
  // A duplicate of MPI_COMM_WORLD. Initializes MPI (MPI_Init_thread, asking for
  // MPI_THREAD_MULTIPLE so that trainers can overlap their gradient exchange) if nobody has,
  // and then finalizes it at exit; MPI initialized by the host is never finalized here. Throws
  // Error when the library was built without MPI.
  static Communicator mpi_world();
  // Whether the library was built with MPI.
  static bool mpi_available();
  // Whether an MPI launcher (mpirun, mpiexec, srun) started this process.
  static bool launched_by_mpi();

  int rank() const;
  int size() const;

  // Collective: root's value, on every rank.
  std::int64_t broadcast(std::int64_t value, int root = 0) const;
  // Collective: the sum of every rank's value, on every rank (integers: exact in any order).
  std::int64_t sum(std::int64_t value) const;
  // For executables only: ends every rank's process with `status` (MPI_Abort), after a failure
  // on this rank that the others cannot learn of. A library never calls it. In one process it
  // is std::exit(status).
  [[noreturn]] void abort_job(int status) const;

 private:
  friend struct detail::CommunicatorAccess;
  explicit Communicator(std::shared_ptr<detail::Communicator> impl);
  std::shared_ptr<detail::Communicator> impl_;
};

}  // namespace shardprop
