// The communicator: how values computed on this process are combined with other processes'.
// Batch-norm statistics and (later) gradients go through it, so an MPI backend plugs in
// without touching the layers. Only the single-process implementation exists today.
#pragma once

#include <span>

namespace shardprop::detail {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank passes `local` of the same length; `all` (size() × local.size()) receives every
  // rank's values in rank order, so callers merge them in a fixed order and every rank gets
  // the same bits.
  virtual void allgather(std::span<const double> local, std::span<double> all) = 0;
};

// One process: allgather is a copy.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allgather(std::span<const double> local, std::span<double> all) override;
};

}  // namespace shardprop::detail
