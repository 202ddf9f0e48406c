// A checkpoint file of arbitrary bytes, loaded as `shardprop train --resume`, `info`, `evaluate`
// and `predict` load one: the file read and checked once (SafetensorsFile), the model and its
// metadata (load_trained_model), the run's metadata (read_run_metadata) and the optimizer state
// (load_training_state). Each returns or throws shardprop::Error; a model that loads predicts.
//   byte 0: bit 0 rewrites the "crc32:" value in the header to the data section's CRC-32, so
//           that mutated tensor data reaches the checks after the checksum; bits 1-2 choose
//           the trainer's optimizer (SGD, SGD with momentum, Adam, SGD)
#include <tbb/task_arena.h>
#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "io/safetensors_file.hpp"
#include "shardprop/error.hpp"
#include "shardprop/run_metadata.hpp"
#include "shardprop/trained_model.hpp"
#include "shardprop/trainer.hpp"

using namespace shardprop;

namespace {

// Overwrites the 8 hex digits after the header's first "crc32:" with the CRC-32 of the bytes
// after the header, when the header length fits the file.
void fix_checksum(std::vector<std::uint8_t>& file) {
  if (file.size() < 8) return;
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, file.data(), 8);
  if (header_length > file.size() - 8) return;
  const std::string_view header(reinterpret_cast<const char*>(file.data()) + 8, header_length);
  const std::size_t at = header.find("crc32:");
  if (at == std::string_view::npos || header.size() - at < 6 + 8) return;
  const std::size_t data_begin = 8 + header_length;
  uLong crc = ::crc32(0L, Z_NULL, 0);
  crc = ::crc32(crc, file.data() + data_begin, static_cast<uInt>(file.size() - data_begin));
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08lx", crc);
  std::memcpy(file.data() + 8 + at + 6, hex, 8);
}

TrainerSettings trainer_settings(std::uint8_t choice) {
  TrainerSettings settings;
  settings.batch_size = 4;
  if (choice == 1) settings.momentum = 0.9f;
  if (choice == 2) settings.optimizer = Optimizer::adam;
  return settings;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fuzz::ScratchFile scratch("checkpoint");
  static tbb::task_arena arena(1);  // coverage depends on the input alone
  fuzz::InputBytes input(data, size);
  const std::uint8_t flags = input.take();
  std::vector<std::uint8_t> file(input.rest().begin(), input.rest().end());
  if ((flags & 1) != 0) fix_checksum(file);
  const auto& path = scratch.write(file);
  arena.execute([&] {
    try {
      const detail::SafetensorsFile parsed = detail::SafetensorsFile::read(path);
      TrainedModel trained = detail::load_trained_model(parsed);
      Model& model = trained.model;
      const auto inputs = static_cast<std::size_t>(model.inputs());
      const auto outputs = static_cast<std::size_t>(model.outputs());
      FUZZ_CHECK(trained.feature_names.empty() || trained.feature_names.size() == inputs,
                 "feature names do not match the inputs");
      FUZZ_CHECK(trained.standardization.empty() || trained.standardization.mean.size() == inputs,
                 "a standardization that does not match the inputs");
      std::vector<float> features(inputs, 0.5f);
      std::vector<float> predictions(outputs);
      model.predict(features, predictions);

      try {
        const RunMetadata run = read_run_metadata(trained, parsed.name());
        FUZZ_CHECK(run.epochs >= 0, "a negative epoch count");
      } catch (const Error&) {
        // A weights file, or a run's metadata that is malformed.
      }
      Trainer trainer(model, trainer_settings(static_cast<std::uint8_t>((flags >> 1) & 3)));
      const TrainingProgress progress = detail::load_training_state(trainer, model, parsed);
      FUZZ_CHECK(progress.epochs >= 0 && progress.steps >= 0, "negative training progress");
      FUZZ_CHECK(trainer.epochs_completed() == progress.epochs, "epochs not restored");
    } catch (const Error&) {
      // Bad input, reported.
    } catch (const std::exception& e) {
      fuzz::fail_unexpected(e);
    }
  });
  return 0;
}
