// Out-of-line members anchor Error's type information in the library.
#include "shardprop/error.hpp"

namespace shardprop {

Error::Error(const std::string& message) : std::runtime_error(message) {}
Error::~Error() = default;

}  // namespace shardprop
