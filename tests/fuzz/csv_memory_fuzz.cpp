// read_csv on arbitrary bytes with options from the input's first bytes (csv_options_bytes.hpp):
// it returns a dataset that passes check_dataset, or throws shardprop::Error.
#include <tbb/task_arena.h>

#include <cstddef>
#include <cstdint>
#include <exception>

#include "csv_options_bytes.hpp"
#include "fuzz_support.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

using namespace shardprop;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::ScratchFile scratch("csv_memory");
  // One thread: coverage then depends on the input alone. Small chunk_bytes still cut the
  // records into many chunks, the part that threads would run in parallel.
  static tbb::task_arena arena(1);
  fuzz::InputBytes input(data, size);
  const CsvOptions options = fuzz::csv_options(input);
  const auto& path = scratch.write(input.rest());
  arena.execute([&] {
    try {
      const Dataset read = read_csv(path, options);
      fuzz::check_dataset(read, options);
    } catch (const Error&) {
      // Bad input, reported.
    } catch (const std::exception& e) {
      fuzz::fail_unexpected(e);
    }
  });
  return 0;
}
