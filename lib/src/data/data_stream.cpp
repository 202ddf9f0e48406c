// DataStream's out-of-line destructor anchors its vtable in the library.
#include "shardprop/data_stream.hpp"

namespace shardprop {

DataStream::~DataStream() = default;

}  // namespace shardprop
