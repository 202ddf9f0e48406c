// What `shardprop train` reads: the training and validation data, in memory or streamed,
// standardized, with class labels indexed, and the loss that --loss auto picks for it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shardprop/communicator.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/model.hpp"
#include "train_options.hpp"

namespace shardprop::cli {

// In memory, each rank holds its part of the training and validation rows (one process: all).
struct TrainingData {
  Dataset shape;  // names, feature count, target width, class names (rows: in memory only)
  std::optional<DatasetPart> train, validation;
  // Streaming: the streams read, in the order made (a split refers to the CSV stream before
  // it), and this rank's parts of the training and validation rows.
  std::vector<std::unique_ptr<DataStream>> streams;
  StreamPart train_stream;
  std::optional<StreamPart> validation_stream;
  Imputation imputation;
  Standardization standardization;
  bool streaming() const { return train_stream.stream != nullptr; }
};

CsvOptions csv_options(const TrainOptions& options, Loss loss);
// Rank 0's decision, so that every rank agrees. Collective.
bool should_stream(const TrainOptions& options, const Communicator& comm);

// The --loss option's loss; for auto, the library's choose_loss (shardprop/loss_choice.hpp)
// with `reason` set to its reason, for the run's header.
Loss choose_loss(const TrainOptions& options, std::string& reason);

// What a resumed run must reuse rather than refit: the label order, the categories, the
// imputation and the standardization.
struct StoredDataState {
  std::vector<std::string> class_names;
  std::vector<CategoricalColumn> categorical;  // the vocabularies the inputs were encoded with
  std::optional<Imputation> imputation;
  std::optional<Standardization> standardization;
};

// Collective: every rank reads its part of the files.
TrainingData load_training_data(const TrainOptions& options, Loss loss,
                                const StoredDataState& stored, const Communicator& comm);

}  // namespace shardprop::cli
