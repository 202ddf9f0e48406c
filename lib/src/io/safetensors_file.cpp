// Reading a safetensors file once, treating it as hostile: every length and offset is checked
// before use, and the data section's CRC-32 before any tensor is handed out.
#include "io/safetensors_file.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; big-endian hosts need byte swapping");

using nlohmann::json;

// A header larger than this is rejected before it is read (PyTorch's own limit is 100 MB).
constexpr std::uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;
constexpr const char* kChecksumKey = "shardprop.checksum";

std::uint64_t dtype_size(const std::string& type) {
  if (type == "F32" || type == "I32") return 4;
  if (type == "F64" || type == "I64") return 8;
  if (type == "F16" || type == "BF16" || type == "I16") return 2;
  if (type == "U8" || type == "I8" || type == "BOOL") return 1;
  return 0;
}

}  // namespace

void Crc32::add(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const Bytef*>(data);
  while (size > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    crc_ = ::crc32(crc_, bytes, chunk);
    bytes += chunk;
    size -= chunk;
  }
}

std::string Crc32::text() const {
  char hex[16];
  std::snprintf(hex, sizeof hex, "%08lx", crc_);
  return std::string("crc32:") + hex;
}

SafetensorsFile SafetensorsFile::read(const std::filesystem::path& path) {
  SafetensorsFile parsed;
  parsed.name_ = path.string();
  const std::string& file = parsed.name_;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(file + ": cannot open for reading");
  parsed.bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(file + ": read error");
  const std::size_t size = parsed.bytes_.size();
  if (size < 8) {
    throw Error(file + ": truncated: " + std::to_string(size) +
                " bytes, a safetensors file starts with an 8-byte header length");
  }
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, parsed.bytes_.data(), 8);
  if (header_length > kMaxHeaderBytes || header_length > size - 8) {
    throw Error(file + ": header length " + std::to_string(header_length) + " exceeds the file (" +
                std::to_string(size) + " bytes) or the 100 MB limit");
  }
  try {
    parsed.header_ =
        json::parse(parsed.bytes_.begin() + 8, parsed.bytes_.begin() + 8 + header_length);
  } catch (const json::exception& e) {
    throw Error(file + ": header is not valid JSON: " + e.what());
  }
  if (!parsed.header_.is_object()) throw Error(file + ": header is not a JSON object");
  parsed.data_begin_ = 8 + header_length;
  const std::size_t data_size = size - parsed.data_begin_;

  struct Range {
    std::uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : parsed.header_.items()) {
    const std::string where = file + ": tensor '" + name + "'";
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(file + ": __metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) throw Error(file + ": metadata '" + key + "' is not a string");
        parsed.metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      throw Error(where + ": needs dtype, shape and data_offsets");
    }
    const json& dtype = entry["dtype"];
    const json& shape = entry["shape"];
    const json& offsets = entry["data_offsets"];
    if (!dtype.is_string()) throw Error(where + ": dtype is not a string");
    if (!shape.is_array()) throw Error(where + ": shape is not an array");
    std::uint64_t elements = 1;
    for (const json& d : shape) {
      if (!d.is_number_unsigned())
        throw Error(where + ": shape has a non-integer or negative dimension");
      const std::uint64_t dim = d.get<std::uint64_t>();
      if (dim != 0 && elements > (std::uint64_t{1} << 62) / dim)
        throw Error(where + ": shape overflows");
      elements *= dim;
    }
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      throw Error(where + ": data_offsets must be two non-negative integers");
    }
    const std::uint64_t begin = offsets[0].get<std::uint64_t>();
    const std::uint64_t end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > data_size) {
      throw Error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] lie outside the " + std::to_string(data_size) + "-byte data section");
    }
    const std::string type = dtype.get<std::string>();
    const std::uint64_t element_size = dtype_size(type);
    if (element_size == 0) throw Error(where + ": unknown dtype '" + type + "'");
    if (end - begin != elements * element_size) {
      throw Error(where + ": " + std::to_string(end - begin) + " bytes do not match shape × " +
                  type + " (" + std::to_string(elements * element_size) + " bytes)");
    }
    ranges.push_back({begin, end, name});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].begin < ranges[i - 1].end) {
      throw Error(file + ": tensors '" + ranges[i - 1].name + "' and '" + ranges[i].name +
                  "' overlap");
    }
  }
  // Files this library writes carry a checksum; files from elsewhere (PyTorch) may not.
  if (const std::string* expected = parsed.metadata_value(kChecksumKey)) {
    Crc32 crc;
    crc.add(parsed.bytes_.data() + parsed.data_begin_, data_size);
    if (crc.text() != *expected) {
      throw Error(file + ": checksum mismatch: the tensor data gives " + crc.text() +
                  ", the header says " + *expected + " (the file is damaged)");
    }
  }
  return parsed;
}

const std::string* SafetensorsFile::metadata_value(const std::string& key) const {
  const auto found = metadata_.find(key);
  return found == metadata_.end() ? nullptr : &found->second;
}

const char* SafetensorsFile::tensor(const std::string& tensor_name, const char* dtype,
                                    const std::vector<std::int64_t>& shape) const {
  const std::string where = name_ + ": tensor '" + tensor_name + "'";
  if (!header_.contains(tensor_name)) throw Error(where + " is missing");
  const json& entry = header_[tensor_name];
  if (entry["dtype"] != dtype) {
    throw Error(where + ": dtype " + entry["dtype"].get<std::string>() + ", expected " + dtype);
  }
  if (entry["shape"].get<std::vector<std::int64_t>>() != shape) {
    throw Error(where + ": shape " + entry["shape"].dump() + " does not match the model's " +
                json(shape).dump());
  }
  return bytes_.data() + data_begin_ + entry["data_offsets"][0].get<std::uint64_t>();
}

}  // namespace shardprop::detail
