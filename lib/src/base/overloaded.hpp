// A set of lambdas as one visitor for std::visit. Every dispatch over a closed set of kinds
// (layer specs, layers) lists each kind with no catch-all, so a new kind fails to compile
// wherever it is not handled.
#pragma once

namespace shardprop::detail {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
// C++20 deduces this for an aggregate by itself; clang before 17 (which builds the fuzz
// targets) needs the guide spelled out.
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace shardprop::detail
