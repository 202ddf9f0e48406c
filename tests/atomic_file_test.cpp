// Atomic file replacement (base/atomic_file.hpp): a reader sees the old file or the new one,
// never a part of either, a failure (a full disk, an I/O error, a read-only directory) leaves
// the old file and no temporary file behind, and the temporary files of killed writers are
// removed by the next writer of the same name, never those of a live one.
#include "base/atomic_file.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

namespace fs = std::filesystem;
using shardprop::detail::AtomicFileWriter;
using shardprop::detail::inject_write_fault_for_testing;
using shardprop::detail::InjectedWriteFault;
using shardprop::detail::parse_temporary_name;
using shardprop::detail::write_file_atomically;
using shardprop::test::directory_entries;
using shardprop::test::read_text;
using shardprop::test::TempDir;
using shardprop::test::write_text;

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// The id of a process that has exited and been reaped: no process has it (until the kernel
// hands it out again, which takes a full cycle of pids).
long dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  return child;
}

// Clears the injected fault however the test ends.
struct FaultGuard {
  explicit FaultGuard(InjectedWriteFault fault) { inject_write_fault_for_testing(fault); }
  ~FaultGuard() { inject_write_fault_for_testing(std::nullopt); }
  FaultGuard(const FaultGuard&) = delete;
  FaultGuard& operator=(const FaultGuard&) = delete;
};

}  // namespace

TEST_CASE("write_file_atomically creates or replaces a file whole", "[atomic_file]") {
  TempDir dir;
  const fs::path path = dir.path() / "out.bin";

  SECTION("a new file") {
    write_file_atomically(path, bytes_of("hello"));
    CHECK(read_text(path) == "hello");
  }
  SECTION("an existing file is replaced, shorter or longer") {
    write_text(path, "a much longer old content");
    write_file_atomically(path, bytes_of("new"));
    CHECK(read_text(path) == "new");
    write_file_atomically(path, bytes_of("newer and longer"));
    CHECK(read_text(path) == "newer and longer");
  }
  SECTION("pieces are written back to back") {
    const std::span<const std::byte> pieces[] = {bytes_of("ab"), bytes_of(""), bytes_of("cde")};
    write_file_atomically(path, pieces);
    CHECK(read_text(path) == "abcde");
  }
  CHECK(directory_entries(dir.path()) == std::vector<std::string>{"out.bin"});
}

TEST_CASE("a failed atomic write names the path and leaves nothing behind", "[atomic_file]") {
  TempDir dir;
  SECTION("the directory does not exist") {
    const fs::path path = dir.path() / "missing" / "out.bin";
    CHECK_THROWS_WITH(write_file_atomically(path, bytes_of("x")),
                      Catch::Matchers::Contains("missing"));
    CHECK_FALSE(fs::exists(path));
  }
  SECTION("the target is a directory: the old entry stays as it was") {
    fs::create_directory(dir.path() / "taken");
    CHECK_THROWS_AS(write_file_atomically(dir.path() / "taken", bytes_of("x")), shardprop::Error);
    CHECK(fs::is_directory(dir.path() / "taken"));
    CHECK(directory_entries(dir.path()) == std::vector<std::string>{"taken"});
  }
}

TEST_CASE("AtomicFileWriter shows nothing until commit, and cleans up without it",
          "[atomic_file]") {
  TempDir dir;
  const fs::path path = dir.path() / "stream.csv";
  write_text(path, "old\n");

  SECTION("commit puts the pieces in place") {
    AtomicFileWriter writer(path);
    writer.write("a,b\n");
    writer.write(bytes_of("1,2\n"));
    CHECK(read_text(path) == "old\n");  // readers still see the old file
    CHECK(fs::exists(writer.temporary_path()));
    CHECK(writer.temporary_path().parent_path() == path.parent_path());
    CHECK(writer.temporary_path().filename().string().front() == '.');  // hidden
    writer.commit();
    CHECK(read_text(path) == "a,b\n1,2\n");
  }
  SECTION("a writer destroyed before commit leaves the old file and no temporary file") {
    fs::path temporary;
    {
      AtomicFileWriter writer(path);
      writer.write("partial");
      temporary = writer.temporary_path();
    }
    CHECK_FALSE(fs::exists(temporary));
    CHECK(read_text(path) == "old\n");
  }
  CHECK(directory_entries(dir.path()) == std::vector<std::string>{"stream.csv"});
}

TEST_CASE("a temporary file names its target, its process and its host", "[atomic_file]") {
  TempDir dir;
  AtomicFileWriter writer(dir.path() / "model.st");
  const auto parsed = parse_temporary_name(writer.temporary_path().filename().string());
  REQUIRE(parsed);
  CHECK(parsed->target == "model.st");
  CHECK(parsed->pid == ::getpid());
  CHECK_FALSE(parsed->host.empty());
  CHECK_FALSE(parse_temporary_name(".model.st.tmp.Ab12Cd"));  // does not say who wrote it
  CHECK_FALSE(parse_temporary_name("model.st"));
  CHECK_FALSE(parse_temporary_name(".model.st.tmp.x12@h.Ab12Cd"));
}

TEST_CASE("a writer removes the temporary files of its name whose process is gone",
          "[atomic_file]") {
  TempDir dir;
  std::string host;
  {
    AtomicFileWriter probe(dir.path() / "probe");
    host = parse_temporary_name(probe.temporary_path().filename().string())->host;
  }
  const std::string dead = std::to_string(dead_pid());
  const std::string alive = std::to_string(::getpid());
  const std::string stale = ".out.bin.tmp." + dead + "@" + host + ".Ab12Cd";
  const std::vector<std::string> kept{
      ".out.bin.tmp." + alive + "@" + host + ".Ef34Gh",   // a live writer's
      ".out.bin.tmp." + dead + "@" + host + "x.Ij56Kl",   // another host's
      ".other.bin.tmp." + dead + "@" + host + ".Mn78Op",  // another target's
      ".out.bin.tmp.Qr90St",                              // does not name its writer
      "out.bin.tmp." + dead + "@" + host + ".Uv12Wx",     // not hidden: not ours
  };
  write_text(dir / stale, "partial");
  for (const std::string& name : kept) write_text(dir / name, "partial");
  write_file_atomically(dir / "out.bin", bytes_of("whole"));
  std::vector<std::string> expected = kept;
  expected.push_back("out.bin");
  std::sort(expected.begin(), expected.end());
  CHECK(directory_entries(dir.path()) == expected);
  CHECK(read_text(dir / "out.bin") == "whole");
}

TEST_CASE("a write that fails midway keeps the old file and removes its temporary file",
          "[atomic_file][disk-errors]") {
  TempDir dir;
  const fs::path path = dir.path() / "checkpoint.st";
  write_text(path, "the previous checkpoint");
  const std::string big(4096, 'x');
  using Row = std::tuple<int, bool, std::uint64_t>;
  const auto [error, at_creation, bytes_left] = GENERATE(table<int, bool, std::uint64_t>({
      Row{ENOSPC, false, 1000},  // the disk fills up during the write
      Row{ENOSPC, false, 0},     // it is full from the start
      Row{EIO, false, 3000},     // the device fails
      Row{EROFS, true, 0},       // the directory is read-only
  }));
  CAPTURE(std::strerror(error), at_creation, bytes_left);
  const FaultGuard fault(InjectedWriteFault{"checkpoint", error, at_creation, bytes_left});
  const std::span<const std::byte> pieces[] = {bytes_of(big), bytes_of(big)};
  CHECK_THROWS_WITH(
      write_file_atomically(path, pieces),
      Catch::Matchers::Contains(path.string()) && Catch::Matchers::Contains(std::strerror(error)));
  CHECK(read_text(path) == "the previous checkpoint");
  CHECK(directory_entries(dir.path()) == std::vector<std::string>{"checkpoint.st"});
  SECTION("other files are not affected") {
    write_file_atomically(dir.path() / "other.st", bytes_of(big));
    CHECK(read_text(dir.path() / "other.st") == big);
  }
}
