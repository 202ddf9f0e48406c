// CsvStream on arbitrary bytes, in blocks of a few bytes (so that records, quotes and CRLF pairs
// straddle blocks), checked against read_csv of the same bytes: when read_csv returns a
// dataset, the stream's chunks, concatenated, are the same rows bit for bit (and again after
// rewind()); when read_csv throws, so does the stream, with the same message when the target
// kind is given (an automatic target is read as numbers by a stream, so its first fault may
// be another one). Options as in csv_options_bytes.hpp, then byte 3 picks the block size.
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "csv_options_bytes.hpp"
#include "fuzz_support.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"

using namespace shardprop;

namespace {

// Every chunk of one pass, appended; the chunks' columns must agree with each other.
Dataset read_stream(CsvStream& stream) {
  Dataset all;
  Dataset chunk;
  bool first = true;
  while (stream.next(chunk)) {
    FUZZ_CHECK(chunk.rows >= 1, "an empty chunk");
    if (first) {
      all.feature_count = chunk.feature_count;
      all.target_width = chunk.target_width;
      all.feature_names = chunk.feature_names;
      all.target_names = chunk.target_names;
      all.class_names = chunk.class_names;
      first = false;
    }
    FUZZ_CHECK(chunk.feature_count == all.feature_count && chunk.target_width == all.target_width,
               "chunks with different columns");
    FUZZ_CHECK(chunk.features.size() == static_cast<std::size_t>(chunk.rows) *
                                            static_cast<std::size_t>(chunk.feature_count),
               "a chunk's features do not fill its rows");
    FUZZ_CHECK(chunk.targets.size() == static_cast<std::size_t>(chunk.rows) *
                                           static_cast<std::size_t>(chunk.target_width),
               "a chunk's targets do not fill its rows");
    all.rows += chunk.rows;
    all.features.insert(all.features.end(), chunk.features.begin(), chunk.features.end());
    all.targets.insert(all.targets.end(), chunk.targets.begin(), chunk.targets.end());
  }
  return all;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void check_same_rows(const Dataset& streamed, const Dataset& whole, const char* pass) {
  const std::string where = std::string(" (") + pass + ")";
  FUZZ_CHECK(streamed.rows == whole.rows, "row counts differ" + where);
  if (whole.rows == 0) return;  // a stream of no rows never shows its columns
  FUZZ_CHECK(streamed.feature_count == whole.feature_count, "feature counts differ" + where);
  FUZZ_CHECK(streamed.target_width == whole.target_width, "target widths differ" + where);
  FUZZ_CHECK(streamed.feature_names == whole.feature_names, "feature names differ" + where);
  FUZZ_CHECK(streamed.target_names == whole.target_names, "target names differ" + where);
  FUZZ_CHECK(same_bits(streamed.features, whole.features), "features differ" + where);
  FUZZ_CHECK(same_bits(streamed.targets, whole.targets), "targets differ" + where);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::ScratchFile scratch("csv_stream");
  static tbb::task_arena arena(1);  // see csv_memory_fuzz.cpp
  fuzz::InputBytes input(data, size);
  const CsvOptions options = fuzz::csv_options(input);
  std::size_t block_bytes = input.pick(std::array<std::size_t, 8>{1, 2, 3, 4, 7, 16, 64, 4096});
  // Blocks of a few bytes cost a parse per record; on longer inputs that would only slow the
  // search (a few hundred bytes already straddle every kind of boundary).
  if (input.rest().size() > 512) block_bytes = std::max<std::size_t>(block_bytes, 64);
  const auto& path = scratch.write(input.rest());
  arena.execute([&] {
    std::optional<Dataset> whole;
    std::string whole_error;
    try {
      whole = read_csv(path, options);
    } catch (const Error& e) {
      whole_error = e.what();
    } catch (const std::exception& e) {
      fuzz::fail_unexpected(e);
    }

    // The stream reads labels only with the class names given, and an automatic target as
    // numbers: give it what read_csv found.
    CsvOptions stream_options = options;
    std::vector<std::string> class_names;
    const bool automatic = options.target_kind == TargetKind::automatic;
    if (whole) {
      class_names = whole->class_names;
      if (automatic) {
        stream_options.target_kind =
            class_names.empty() ? TargetKind::numeric : TargetKind::classes;
      }
      // A label column with no rows has no class names, which a stream needs up front.
      if (stream_options.target_kind == TargetKind::classes && class_names.empty() &&
          !options.no_target) {
        return;
      }
    } else if (automatic) {
      stream_options.target_kind = TargetKind::numeric;
    } else if (options.target_kind == TargetKind::classes && !options.no_target) {
      try {
        class_names = collect_class_names(path, stream_options);
      } catch (const Error& e) {
        FUZZ_CHECK(std::string(e.what()) == whole_error, "collect_class_names says '" +
                                                             std::string(e.what()) +
                                                             "', read_csv '" + whole_error + "'");
        return;
      } catch (const std::exception& e) {
        fuzz::fail_unexpected(e);
      }
      if (class_names.empty()) return;  // as above
    }

    try {
      CsvStream stream(path, stream_options, class_names, block_bytes);
      const Dataset first = read_stream(stream);
      FUZZ_CHECK(whole.has_value(), "the stream read what read_csv rejected: " + whole_error);
      check_same_rows(first, *whole, "first pass");
      stream.rewind();
      check_same_rows(read_stream(stream), *whole, "after rewind");
    } catch (const Error& e) {
      FUZZ_CHECK(!whole.has_value(),
                 "the stream rejected what read_csv read: " + std::string(e.what()));
      if (!automatic) {
        FUZZ_CHECK(
            std::string(e.what()) == whole_error,
            "the stream says '" + std::string(e.what()) + "', read_csv '" + whole_error + "'");
      }
    } catch (const std::exception& e) {
      fuzz::fail_unexpected(e);
    }
  });
  return 0;
}
