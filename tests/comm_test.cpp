// The communicator (base/communicator.hpp) as the trainer sees it: one process is rank 0 of 1, and
// allgather hands back exactly what was given, so combining through it changes no bits.
#include "base/communicator.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <limits>
#include <vector>

TEST_CASE("a single process is rank 0 of 1 and its allgather returns its own values", "[comm]") {
  shardprop::detail::LocalCommunicator comm;
  CHECK(comm.rank() == 0);
  CHECK(comm.size() == 1);
  const std::vector<double> local{1.5, -0.0, std::numeric_limits<double>::denorm_min(), 1e300};
  std::vector<double> all(local.size() * static_cast<std::size_t>(comm.size()), 42.0);
  comm.allgather(std::span<const double>(local), std::span<double>(all));
  CHECK(std::memcmp(all.data(), local.data(), local.size() * sizeof(double)) == 0);
}
