// Atomic file replacement (base/atomic_file.hpp): a reader sees the old file or the new one,
// never a part of either, and a failure leaves the old file and no temporary file behind.
#include "base/atomic_file.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shardprop/error.hpp"
#include "test_util.hpp"

namespace {

namespace fs = std::filesystem;
using shardprop::detail::AtomicFileWriter;
using shardprop::detail::write_file_atomically;
using shardprop::test::directory_entries;
using shardprop::test::read_text;
using shardprop::test::TempDir;
using shardprop::test::write_text;

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

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
