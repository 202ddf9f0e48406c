// The MPI communicator: the one file that includes mpi.h. It works on its own duplicate of the
// caller's communicator (so its messages never meet the host's), initializes MPI only if nobody
// has and then finalizes it at exit, and leaves error handlers alone. Only point-to-point
// messages and gathers are used: no MPI reduction, whose summation order MPI would choose.
#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/communicator.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

constexpr int kTag = 0x5b;

void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error(std::string("MPI: ") + call + " failed: " + std::string(text, length));
}

int count_of(std::size_t n, const char* call) {
  if (n > static_cast<std::size_t>(INT_MAX)) {
    throw Error(std::string("MPI: ") + call + " of " + std::to_string(n) +
                " elements exceeds MPI's int count");
  }
  return static_cast<int>(n);
}

bool finalized() {
  int done = 0;
  MPI_Finalized(&done);
  return done != 0;
}

void finalize_at_exit() {
  if (!finalized()) MPI_Finalize();
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm parent) {
    check(MPI_Comm_dup(parent, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    int level = MPI_THREAD_SINGLE;
    MPI_Query_thread(&level);
    concurrent_ = level == MPI_THREAD_MULTIPLE;
  }
  ~MpiCommunicator() override {
    if (!finalized()) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool distributed() const override { return true; }
  bool concurrent_calls() const override { return concurrent_; }

  void allgather_bytes(std::span<const std::byte> local, std::span<std::byte> all) override {
    const int n = count_of(local.size(), "MPI_Allgather");
    check(MPI_Allgather(local.data(), n, MPI_BYTE, all.data(), n, MPI_BYTE, comm_),
          "MPI_Allgather");
  }

  std::vector<std::string> allgather_strings(const std::string& local) override {
    const int n = count_of(local.size(), "MPI_Allgatherv");
    std::vector<int> sizes(static_cast<std::size_t>(size_)), offsets(sizes.size());
    check(MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, comm_), "MPI_Allgather");
    std::size_t total = 0;
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      offsets[r] = count_of(total, "MPI_Allgatherv");
      total += static_cast<std::size_t>(sizes[r]);
    }
    std::string joined(total, '\0');
    check(MPI_Allgatherv(local.data(), n, MPI_CHAR, joined.data(), sizes.data(), offsets.data(),
                         MPI_CHAR, comm_),
          "MPI_Allgatherv");
    std::vector<std::string> all;
    for (std::size_t r = 0; r < sizes.size(); ++r) {
      all.push_back(
          joined.substr(static_cast<std::size_t>(offsets[r]), static_cast<std::size_t>(sizes[r])));
    }
    return all;
  }

  void broadcast_bytes(std::span<std::byte> data, int root) override {
    check(MPI_Bcast(data.data(), count_of(data.size(), "MPI_Bcast"), MPI_BYTE, root, comm_),
          "MPI_Bcast");
  }

  void send(std::span<const float> data, int to) override {
    check(MPI_Send(data.data(), count_of(data.size(), "MPI_Send"), MPI_FLOAT, to, kTag, comm_),
          "MPI_Send");
  }

  void receive(std::span<float> data, int from) override {
    check(MPI_Recv(data.data(), count_of(data.size(), "MPI_Recv"), MPI_FLOAT, from, kTag, comm_,
                   MPI_STATUS_IGNORE),
          "MPI_Recv");
  }

  int start_send(std::span<const float> data, int to) override {
    MPI_Request& request = requests_.emplace_back(MPI_REQUEST_NULL);
    check(MPI_Isend(data.data(), count_of(data.size(), "MPI_Isend"), MPI_FLOAT, to, kTag, comm_,
                    &request),
          "MPI_Isend");
    return static_cast<int>(requests_.size()) - 1;
  }

  int start_receive(std::span<float> data, int from) override {
    MPI_Request& request = requests_.emplace_back(MPI_REQUEST_NULL);
    check(MPI_Irecv(data.data(), count_of(data.size(), "MPI_Irecv"), MPI_FLOAT, from, kTag, comm_,
                    &request),
          "MPI_Irecv");
    return static_cast<int>(requests_.size()) - 1;
  }

  void wait(int transfer) override {
    check(MPI_Wait(&requests_.at(static_cast<std::size_t>(transfer)), MPI_STATUS_IGNORE),
          "MPI_Wait");
  }

  bool test(int transfer) override {
    int done = 0;
    check(MPI_Test(&requests_.at(static_cast<std::size_t>(transfer)), &done, MPI_STATUS_IGNORE),
          "MPI_Test");
    return done != 0;
  }

  bool test_all() override {
    int done = 0;
    check(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done,
                      MPI_STATUSES_IGNORE),
          "MPI_Testall");
    if (done != 0) requests_.clear();
    return done != 0;
  }

  void wait_all() override {
    check(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE),
          "MPI_Waitall");
    requests_.clear();
  }

  void all_to_all(std::span<const float> send, std::span<const int> send_counts,
                  std::span<float> receive, std::span<const int> recv_counts) override {
    std::vector<int> send_offsets(send_counts.size()), recv_offsets(recv_counts.size());
    std::size_t at_send = 0, at_recv = 0;
    for (std::size_t q = 0; q < send_counts.size(); ++q) {
      send_offsets[q] = count_of(at_send, "MPI_Alltoallv");
      recv_offsets[q] = count_of(at_recv, "MPI_Alltoallv");
      at_send += static_cast<std::size_t>(send_counts[q]);
      at_recv += static_cast<std::size_t>(recv_counts[q]);
    }
    check(MPI_Alltoallv(send.data(), send_counts.data(), send_offsets.data(), MPI_FLOAT,
                        receive.data(), recv_counts.data(), recv_offsets.data(), MPI_FLOAT, comm_),
          "MPI_Alltoallv");
  }

  [[noreturn]] void abort(int status) override {
    MPI_Abort(comm_, status);
    std::exit(status);  // MPI_Abort does not return; this satisfies [[noreturn]]
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::vector<MPI_Request> requests_;  // started transfers, until wait_all()
  int rank_ = 0;
  int size_ = 1;
  bool concurrent_ = false;
};

}  // namespace

bool mpi_built() { return true; }

std::shared_ptr<Communicator> mpi_communicator(std::int64_t fortran_handle) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized || finalized()) {
    throw Error("MPI: a communicator needs MPI initialized (MPI_Init) and not yet finalized");
  }
  const MPI_Comm comm = MPI_Comm_f2c(static_cast<MPI_Fint>(fortran_handle));
  if (comm == MPI_COMM_NULL) throw Error("MPI: the communicator handle is MPI_COMM_NULL");
  return std::make_shared<MpiCommunicator>(comm);
}

std::shared_ptr<Communicator> mpi_world() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    if (finalized()) throw Error("MPI: already finalized; it cannot be initialized again");
    int provided = 0;
    // The trainer calls MPI from the thread that drives it, which need not be the main thread,
    // and, to overlap the gradient exchange with the backward pass, from a second thread at the
    // same time; with less than MPI_THREAD_MULTIPLE it does not overlap.
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
    std::atexit(finalize_at_exit);
  }
  return std::make_shared<MpiCommunicator>(MPI_COMM_WORLD);
}

}  // namespace shardprop::detail
