// Datasets larger than memory: a stream hands out rows in bounded chunks, in file order, and can
// start over for the next epoch. Trainer::train_epoch(DataStream&) shuffles them through a
// bounded buffer; Standardization::fit(DataStream&) makes one pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shardprop/dataset.hpp"

namespace shardprop {

namespace detail {
struct CsvStreamAccess;  // internal: collect_class_names and streams of one part of a file
}

class DataStream {
 public:
  virtual ~DataStream();
  // Starts again from the first row.
  virtual void rewind() = 0;
  // Replaces `chunk` with the next rows (at least one) and returns true, or returns false at
  // the end. Every chunk has the same columns; its size is the stream's choice.
  virtual bool next(Dataset& chunk) = 0;
};

// Rewinds `stream` and calls work(chunk) on each of its chunks in order, reading the next chunk
// in a TBB task of the caller's arena while `work` runs on the current one: a pass whose reading
// (parsing) and work each leave cores idle at times overlaps them. The stream's next() and
// `work` run concurrently, so they must not share state. Errors of either propagate (after the
// other has finished); rows after a failing chunk are not worked on. Holds two chunks at once.
void for_each_chunk(DataStream& stream, const std::function<void(const Dataset& chunk)>& work);

// A CSV file read in blocks of about `block_bytes` (each parsed in parallel in chunks of
// options.chunk_bytes); the memory held does not grow with the file: one block buffer (larger
// only to fit a single record longer than a block) and the parsed rows of one block. Same rules
// and messages as read_csv (line numbers count from the start of the file). Class labels need
// the whole label set up front, since a stream cannot sort labels it has not seen: pass
// `class_names` (from collect_class_names, or the training set's) and the target is read as
// labels; without them an automatic target is read as numbers. With CsvOptions::no_target the
// chunks have no targets (target_width 0), as prediction input needs. Categorical columns need
// their vocabularies up front too, in CsvOptions::categories (from collect_categories, or a
// trained model's); each chunk's unseen_category_rows counts its rows. `path` is what read_csv
// takes: a plain, gzip or zstd file, or "-" for standard input. Compressed input is
// decompressed by a thread of its own up to one block ahead (held besides the block buffer),
// so a block is parsed while the next is decompressed. Standard input (or another pipe) can
// be read once: rewind() before the first next() does nothing, afterwards it throws Error.
class CsvStream final : public DataStream {
 public:
  static constexpr std::size_t kDefaultBlockBytes = std::size_t{64} << 20;

  CsvStream(const std::filesystem::path& path, const CsvOptions& options,
            std::vector<std::string> class_names = {},
            std::size_t block_bytes = kDefaultBlockBytes);
  ~CsvStream() override;
  CsvStream(const CsvStream&) = delete;
  CsvStream& operator=(const CsvStream&) = delete;

  void rewind() override;
  bool next(Dataset& chunk) override;

  // Applied to every chunk before next() returns it: the imputation first, then the
  // standardization.
  void set_imputation(Imputation imputation);
  void set_standardization(Standardization standardization);
  // Rows left out by MissingPolicy::drop in the current pass (after a rewind, in the last one
  // until the next chunk is read).
  std::int64_t dropped_rows() const;
  // The largest number of bytes the stream has held at once (buffers and parsed chunk).
  std::size_t peak_bytes() const;

 private:
  friend struct detail::CsvStreamAccess;
  struct State;
  std::unique_ptr<State> state_;
};

// One side of a seeded validation split of another stream, for data that is streamed and so
// cannot be split in memory (split_validation). Row i of the source (0-based, counted over the
// whole source whatever its chunking) is held out when a counter-based hash of (seed, i) falls
// in the lowest `fraction` of its range: the hash split_validation ranks rows by, so a given row
// tends to fall on the same side, but the held-out count is about fraction × rows rather than
// that number rounded. Two SplitStreams with the same seed and fraction over two streams of the
// same rows, one per part, partition the rows. The source must outlive the split, and only the
// split reads it; chunks with no row of this part are skipped.
class SplitStream final : public DataStream {
 public:
  enum class Part { training, validation };

  // Throws Error unless fraction is in (0, 1). first_row: the index of the source's first row
  // in the whole (a rank's part of a file starts further in), so that the split is the whole's.
  SplitStream(DataStream& source, double fraction, std::uint64_t seed, Part part,
              std::int64_t first_row = 0);

  void rewind() override;
  bool next(Dataset& chunk) override;

 private:
  bool holds(std::int64_t row) const;  // row `row` of the whole belongs to this part

  DataStream& source_;
  std::uint64_t threshold_;
  std::uint64_t seed_;
  Part part_;
  std::int64_t first_row_;
  std::int64_t next_row_;  // the whole's row index of the source's next row
  Dataset source_chunk_;
};

// One streaming pass that collects the class labels of a CSV's target column, sorted as
// read_csv sorts them.
std::vector<std::string> collect_class_names(const std::filesystem::path& path,
                                             const CsvOptions& options);

// One streaming pass that fits the vocabularies of the categorical columns
// (CsvOptions::categorical) as read_csv fits them: distinct texts sorted by bytes, with counts,
// missing cells left out. Throws Error when one has more than CsvOptions::max_categories.
std::vector<CategoricalColumn> collect_categories(const std::filesystem::path& path,
                                                  const CsvOptions& options);

}  // namespace shardprop
