// A command line whose options contradict each other: exit status 2, like CLI11's own errors.
#pragma once

#include <stdexcept>
#include <string>

namespace shardprop::cli {

class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace shardprop::cli
