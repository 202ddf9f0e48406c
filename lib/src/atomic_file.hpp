// Crash-safe file replacement: write a temporary file in the target's directory, fsync it,
// rename it over the target, fsync the directory. Readers see the old file or the new one.
#pragma once

#include <filesystem>
#include <span>

namespace shardprop::detail {

// Throws Error naming the path on any failure; the target is then untouched and the
// temporary file removed.
void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes);
// The same for a file made of several pieces written back to back (no combined copy).
void write_file_atomically(const std::filesystem::path& path,
                           std::span<const std::span<const std::byte>> pieces);

}  // namespace shardprop::detail
