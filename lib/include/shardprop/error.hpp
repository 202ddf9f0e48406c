// The one exception type the library throws for bad input, bad settings and I/O failures.
// Messages say what and where (file:line:column for CSV, tensor name for checkpoints).
#pragma once

#include <stdexcept>
#include <string>

namespace shardprop {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message);
  ~Error() override;
};

}  // namespace shardprop
