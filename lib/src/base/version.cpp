// The library's version string, set by CMake from project(VERSION).
#include "shardprop/version.hpp"

namespace shardprop {

std::string version() { return SHARDPROP_VERSION; }

}  // namespace shardprop
