// What a model predicts for new rows, in the terms of its loss (class probabilities, per-output
// probabilities, values), and a CSV writer for them that replaces its file atomically. Leaves out
// reading the input (data_stream.hpp with CsvOptions::no_target) and scoring (evaluation.hpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

#include "shardprop/model.hpp"
#include "shardprop/trained_model.hpp"

namespace shardprop {

// features: [rows, inputs] as the model takes them (standardized if it was trained so).
// outputs: [rows, outputs]: xent: class probabilities, a softmax of the logits computed as
// exp(z − max z) / Σ exp(z − max z) (summing to 1 up to float rounding); bce: σ(z) per output;
// mse: the network's values. labels, optional (empty to skip): xent: [rows], the predicted class
// (the first largest logit); bce: [rows, outputs], 1 where the logit is > 0, else 0; must be
// empty for mse. Labels are decided on the logits as evaluate_model decides them, so they agree
// with its accuracy. Parallel in the caller's tbb::task_arena; results do not depend on it.
// Throws Error on sizes that do not fit.
void predict_outputs(const Model& model, std::span<const float> features, std::span<float> outputs,
                     std::span<std::int32_t> labels = {});

struct PredictionCsvOptions {
  char delimiter = ',';
  // xent: the predicted class, then one probability column per class (header: the class
  // names); bce: σ(z) per output instead of 0/1. An error for mse.
  bool probabilities = false;
};

// Writes predictions as CSV, one line per row in the order given, after a header:
//   xent: the target name, then class names (with probabilities); lines hold the class name.
//   bce: the target names; lines hold 0/1 (or σ(z) with probabilities) per output.
//   mse: the target names; lines hold the predicted values.
// Without recorded target names the columns are "class" (xent) or "output_J". Names are quoted
// as RFC 4180 needs (delimiter, quote, line break, or blanks at either end); numbers are printed
// in the shortest form that reads back to the same float. The lines go to a hidden temporary
// file next to `path` that commit() renames over it (fsync before and after): until then an
// existing file is untouched, and a writer destroyed without commit() removes the temporary file.
// The model must outlive the writer. One thread writes; write() predicts in parallel in the
// caller's task_arena.
class PredictionCsvWriter {
 public:
  PredictionCsvWriter(const std::filesystem::path& path, const TrainedModel& model,
                      const PredictionCsvOptions& options = {});
  // The writer keeps a reference to the model: a temporary would dangle.
  PredictionCsvWriter(const std::filesystem::path& path, TrainedModel&& model,
                      const PredictionCsvOptions& options = {}) = delete;
  ~PredictionCsvWriter();
  PredictionCsvWriter(const PredictionCsvWriter&) = delete;
  PredictionCsvWriter& operator=(const PredictionCsvWriter&) = delete;

  // Predicts these rows (features as for predict_outputs) and appends their lines.
  void write(std::span<const float> features);
  // Puts the file in place. REQUIRES: called once, last.
  void commit();
  std::int64_t rows_written() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace shardprop
