// The communicator: how values computed on this process meet other processes' values. Batch-norm
// statistics, gradients, metrics and the data's statistics go through it, so the layers never
// know whether they run in one process or in many. Two implementations: this process alone
// (below) and MPI (mpi_communicator.cpp, the one file that includes mpi.h).
//
// Every operation is collective unless it says otherwise: all ranks call it, in the same order,
// with sizes that agree. None reduces: ranks receive each other's values and combine them in an
// order of their own choosing, so results never depend on an order MPI picks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace shardprop::detail {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // True when this is an MPI communicator (even of one rank).
  virtual bool distributed() const = 0;
  // True when two threads may call it at once (MPI_THREAD_MULTIPLE): point-to-point transfers
  // on one thread while another makes collective calls.
  virtual bool concurrent_calls() const = 0;

  // Every rank passes `local` of the same size; `all` (size() × local.size() bytes) receives
  // every rank's bytes in rank order.
  virtual void allgather_bytes(std::span<const std::byte> local, std::span<std::byte> all) = 0;
  // Every rank's string, in rank order (sizes may differ).
  virtual std::vector<std::string> allgather_strings(const std::string& local) = 0;
  // root's bytes to every rank.
  virtual void broadcast_bytes(std::span<std::byte> data, int root) = 0;
  // Point to point, not collective: blocks until `data` may be reused (send) or has arrived
  // (receive). Matched in call order between a pair of ranks.
  virtual void send(std::span<const float> data, int to) = 0;
  virtual void receive(std::span<float> data, int from) = 0;
  // Non-blocking point to point: starts a transfer and returns its number; `data` must stay put
  // until wait() of that number, or wait_all(), returns. Matched in start order between a pair
  // of ranks, as the blocking calls are.
  virtual int start_send(std::span<const float> data, int to) = 0;
  virtual int start_receive(std::span<float> data, int from) = 0;
  virtual void wait(int transfer) = 0;
  virtual void wait_all() = 0;
  // Whether a transfer (all started transfers) has completed; drives MPI's progress without
  // blocking, for a thread that should sleep rather than spin while it waits.
  virtual bool test(int transfer) = 0;
  virtual bool test_all() = 0;
  // Rank q receives send_counts[q] floats of every rank's `send` (which holds one block per
  // destination, in rank order); `receive` gets recv_counts[p] floats from every rank p, in rank
  // order. Counts must agree pairwise.
  virtual void all_to_all(std::span<const float> send, std::span<const int> send_counts,
                          std::span<float> receive, std::span<const int> recv_counts) = 0;

  // Ends every process of the communicator (MPI_Abort); for executables.
  [[noreturn]] virtual void abort(int status) = 0;

  template <class T>
  void allgather(std::span<const T> local, std::span<T> all) {
    static_assert(std::is_trivially_copyable_v<T>);
    allgather_bytes(std::as_bytes(local), std::as_writable_bytes(all));
  }
  template <class T>
  std::vector<T> allgather(const T& value) {
    std::vector<T> all(static_cast<std::size_t>(size()));
    allgather(std::span<const T>(&value, 1), std::span<T>(all));
    return all;
  }
  template <class T>
  void broadcast(std::span<T> data, int root) {
    static_assert(std::is_trivially_copyable_v<T>);
    broadcast_bytes(std::as_writable_bytes(data), root);
  }
};

// One process: rank 0 of 1; gathers and exchanges are copies.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool distributed() const override { return false; }
  bool concurrent_calls() const override { return false; }
  void allgather_bytes(std::span<const std::byte> local, std::span<std::byte> all) override;
  std::vector<std::string> allgather_strings(const std::string& local) override;
  void broadcast_bytes(std::span<std::byte>, int) override {}
  void send(std::span<const float> data, int to) override;
  void receive(std::span<float> data, int from) override;
  int start_send(std::span<const float> data, int to) override;
  int start_receive(std::span<float> data, int from) override;
  void wait(int) override {}
  void wait_all() override {}
  bool test(int) override { return true; }
  bool test_all() override { return true; }
  void all_to_all(std::span<const float> send, std::span<const int> send_counts,
                  std::span<float> receive, std::span<const int> recv_counts) override;
  [[noreturn]] void abort(int status) override;
};

// MPI (mpi_communicator.cpp). Both throw Error when the library was built without MPI.
// A duplicate of the communicator with this Fortran handle (MPI_Comm_c2f), which must be valid
// and MPI initialized.
std::shared_ptr<Communicator> mpi_communicator(std::int64_t fortran_handle);
// A duplicate of MPI_COMM_WORLD, initializing MPI (MPI_Init_thread) if nobody has; MPI is then
// finalized at exit.
std::shared_ptr<Communicator> mpi_world();
bool mpi_built();
// Whether an MPI launcher (mpirun, mpiexec, srun with PMI/PMIx) started this process: the
// environment variables they set.
bool launched_by_mpi_launcher();

}  // namespace shardprop::detail
