// Datasets larger than memory: a stream hands out rows in bounded chunks, in file order, and can
// start over for the next epoch. Trainer::train_epoch(DataStream&) shuffles them through a
// bounded buffer; Standardization::fit(DataStream&) makes one pass.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

#include "shardprop/dataset.hpp"

namespace shardprop {

class DataStream {
 public:
  virtual ~DataStream();
  // Starts again from the first row.
  virtual void rewind() = 0;
  // Replaces `chunk` with the next rows (at least one) and returns true, or returns false at
  // the end. Every chunk has the same columns; its size is the stream's choice.
  virtual bool next(Dataset& chunk) = 0;
};

// A CSV file read in chunks of about `chunk_bytes`; the memory held does not grow with the file.
// Same rules and messages as read_csv. Class labels need the full label set up front (a
// stream cannot sort labels it has not seen): pass `class_names` (for example from a first
// pass with collect_class_names) when options.target_kind is classes.
class CsvStream final : public DataStream {
 public:
  CsvStream(const std::filesystem::path& path, const CsvOptions& options,
            std::vector<std::string> class_names = {});
  ~CsvStream() override;
  CsvStream(const CsvStream&) = delete;
  CsvStream& operator=(const CsvStream&) = delete;

  void rewind() override;
  bool next(Dataset& chunk) override;

  // Applied to every chunk before next() returns it.
  void set_standardization(Standardization standardization);
  // The largest number of bytes the stream has held at once (buffers and parsed chunk).
  std::size_t peak_bytes() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// One streaming pass that collects the class labels of a CSV's target column, sorted as
// read_csv sorts them.
std::vector<std::string> collect_class_names(const std::filesystem::path& path,
                                             const CsvOptions& options);

}  // namespace shardprop
