// A set of lambdas as one visitor for std::visit. Every dispatch over a closed set of kinds
// (layer specs, layers) lists each kind with no catch-all, so a new kind fails to compile
// wherever it is not handled.
#pragma once

namespace shardprop::detail {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};

}  // namespace shardprop::detail
