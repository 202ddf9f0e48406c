// The single-process communicator: everything is a copy to or from this rank.
#include "base/communicator.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

#include "base/agreement.hpp"
#include "shardprop/communicator.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {

void LocalCommunicator::allgather_bytes(std::span<const std::byte> local,
                                        std::span<std::byte> all) {
  std::copy(local.begin(), local.end(), all.begin());
}

std::vector<std::string> LocalCommunicator::allgather_strings(const std::string& local) {
  return {local};
}

void LocalCommunicator::send(std::span<const float>, int to) {
  throw Error("communicator: a single process has no rank " + std::to_string(to) + " to send to");
}

void LocalCommunicator::receive(std::span<float>, int from) {
  throw Error("communicator: a single process has no rank " + std::to_string(from) +
              " to receive from");
}

int LocalCommunicator::start_send(std::span<const float> data, int to) {
  send(data, to);
  return 0;
}

int LocalCommunicator::start_receive(std::span<float> data, int from) {
  receive(data, from);
  return 0;
}

void LocalCommunicator::all_to_all(std::span<const float> send, std::span<const int>,
                                   std::span<float> receive, std::span<const int>) {
  std::copy(send.begin(), send.end(), receive.begin());
}

void LocalCommunicator::abort(int status) { std::exit(status); }

bool launched_by_mpi_launcher() {
  // Open MPI's mpirun, PMIx (Open MPI 4+, Slurm's srun --mpi=pmix), PMI-1/2 (MPICH's hydra,
  // srun --mpi=pmi2).
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

}  // namespace shardprop::detail

// ---- The public handle ---------------------------------------------------------------------

namespace shardprop {

CollectiveError::~CollectiveError() = default;

Communicator::Communicator() : impl_(std::make_shared<detail::LocalCommunicator>()) {}
Communicator::Communicator(std::shared_ptr<detail::Communicator> impl) : impl_(std::move(impl)) {}

Communicator Communicator::mpi(std::int64_t fortran_handle) {
  return Communicator(detail::mpi_communicator(fortran_handle));
}
Communicator Communicator::mpi_world() { return Communicator(detail::mpi_world()); }
bool Communicator::mpi_available() { return detail::mpi_built(); }
bool Communicator::launched_by_mpi() { return detail::launched_by_mpi_launcher(); }
int Communicator::rank() const { return impl_->rank(); }
int Communicator::size() const { return impl_->size(); }
std::int64_t Communicator::broadcast(std::int64_t value, int root) const {
  impl_->broadcast(std::span<std::int64_t>(&value, 1), root);
  return value;
}
std::int64_t Communicator::sum(std::int64_t value) const {
  std::int64_t total = 0;
  for (std::int64_t v : impl_->allgather(value)) total += v;
  return total;
}
void Communicator::abort_job(int status) const {
  impl_->abort(status);
  std::exit(status);  // not reached: a virtual call cannot carry [[noreturn]]
}

namespace detail {

Communicator& CommunicatorAccess::of(const shardprop::Communicator& c) { return *c.impl_; }
std::shared_ptr<Communicator> CommunicatorAccess::shared(const shardprop::Communicator& c) {
  return c.impl_;
}

void agree_on_failure(Communicator& comm, const std::string& failure) {
  const std::vector<std::string> all = comm.allgather_strings(failure);
  for (std::size_t r = 0; r < all.size(); ++r) {
    if (all[r].empty()) continue;
    throw CollectiveError(all.size() > 1 ? "rank " + std::to_string(r) + ": " + all[r] : all[r]);
  }
}

}  // namespace detail
}  // namespace shardprop
