// Floats in JSON as the shortest decimal that reads back as the same float ("1e-05", not
// "9.999999747378752e-06"). nlohmann::json holds numbers as doubles and prints a double's
// shortest form, so it is given the double nearest to the float's shortest decimal.
#pragma once

#include <charconv>
#include <cmath>
#include <system_error>

namespace shardprop::cli {

inline double json_float(float value) {
  if (!std::isfinite(value)) return value;
  char text[32];
  const std::to_chars_result written = std::to_chars(text, text + sizeof text, value);
  double shortest = 0.0;
  const std::from_chars_result read = std::from_chars(text, written.ptr, shortest);
  // Read back as a float it must be the same float (it is, barring double rounding).
  if (read.ec != std::errc() || static_cast<float>(shortest) != value) return value;
  return shortest;
}

}  // namespace shardprop::cli
