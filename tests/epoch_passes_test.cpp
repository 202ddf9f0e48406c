// How many times an epoch touches each row. Without validation data, the epoch's reported loss
// and accuracy are the running metrics of its own training passes: every row is parsed once and
// goes through one training pass, and no row is evaluated again. Evaluation passes happen only
// when a caller asks for them (validation data, or --eval-train).
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/training_run.hpp"
#include "test_util.hpp"

using namespace shardprop;

namespace {

// A stream that counts the rows it hands out: for a CSV stream, the rows parsed.
class CountingStream final : public DataStream {
 public:
  explicit CountingStream(DataStream& inner) : inner_(inner) {}
  void rewind() override { inner_.rewind(); }
  bool next(Dataset& chunk) override {
    if (!inner_.next(chunk)) return false;
    rows += chunk.rows;
    return true;
  }
  std::int64_t rows = 0;

 private:
  DataStream& inner_;
};

// Three classes in 4 features, one row per line.
std::string write_csv(const test::TempDir& dir, int rows) {
  const std::string path = (dir / "data.csv").string();
  std::ofstream out(path);
  out << "a,b,c,d,label\n";
  std::mt19937_64 bits(5);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  for (int r = 0; r < rows; ++r) {
    const int label = r % 3;
    for (int j = 0; j < 4; ++j) out << static_cast<float>(label * (j % 2)) + noise(bits) << ',';
    out << label << '\n';
  }
  return path;
}

}  // namespace

TEST_CASE("an epoch without validation parses and computes each row once", "[run][passes]") {
  constexpr int kRows = 1000;
  constexpr int kEpochs = 3;
  test::TempDir dir;
  const std::string path = write_csv(dir, kRows);
  CsvOptions csv;
  csv.targets = {"label"};
  const std::vector<std::string> classes = collect_class_names(path, csv);

  RunSettings settings;
  settings.spec = ModelSpec::mlp(4, std::vector<int>{16}, 3, Activation::relu, Loss::xent);
  settings.trainer.batch_size = 64;
  settings.trainer.threads = GENERATE(1, 2);
  settings.epochs = kEpochs;
  RunMetadata metadata;
  metadata.data_name = "data.csv";
  metadata.class_names = classes;

  StepProfile profile;
  RunData data;
  std::vector<double> epoch_losses;
  RunObserver observer;
  observer.epoch_finished = [&](const EpochResult& e) {
    // Without RunData::evaluate, the epoch's own running metrics stand in.
    epoch_losses.push_back(e.evaluation.loss);
    CHECK(e.evaluation.loss == e.train.loss);
    CHECK(e.train.rows == kRows);
  };

  SECTION("streamed from the CSV file: parsed once per epoch, as each epoch reads it") {
    CsvStream file(path, csv, classes, /*block_bytes=*/4096);
    CountingStream stream(file);
    data.train_epoch = [&](Trainer& t) {
      const Metrics m = t.train_epoch(stream);
      profile = t.step_profile();
      return m;
    };
    train_run(settings, metadata, data, observer);
    CHECK(stream.rows == std::int64_t{kRows} * kEpochs);
  }
  SECTION("loaded into memory: parsed once before the first epoch") {
    CsvStream file(path, csv, classes, /*block_bytes=*/4096);
    CountingStream stream(file);
    Dataset loaded;
    for (Dataset chunk; stream.next(chunk);) {
      loaded.rows += chunk.rows;
      loaded.feature_count = chunk.feature_count;
      loaded.class_names = chunk.class_names;
      loaded.features.insert(loaded.features.end(), chunk.features.begin(), chunk.features.end());
      loaded.targets.insert(loaded.targets.end(), chunk.targets.begin(), chunk.targets.end());
    }
    data.train_epoch = [&](Trainer& t) {
      const Metrics m = t.train_epoch(loaded);
      profile = t.step_profile();
      return m;
    };
    train_run(settings, metadata, data, observer);
    CHECK(stream.rows == kRows);
  }
  CHECK(epoch_losses.size() == kEpochs);
  CHECK(profile.training_rows == std::int64_t{kRows} * kEpochs);
  CHECK(profile.evaluated_rows == 0);
  CHECK(profile.steps == kEpochs * ((kRows + 63) / 64));
}

TEST_CASE("evaluation passes are counted when a caller asks for them", "[run][passes]") {
  constexpr int kRows = 600;
  test::TempDir dir;
  const std::string path = write_csv(dir, kRows);
  CsvOptions csv;
  csv.targets = {"label"};
  const Dataset loaded = read_csv(path, csv);
  RunSettings settings;
  settings.spec = ModelSpec::mlp(4, std::vector<int>{16}, 3, Activation::relu, Loss::xent);
  settings.trainer.batch_size = 50;
  settings.epochs = 2;
  RunMetadata metadata;
  metadata.data_name = "data.csv";
  metadata.class_names = loaded.class_names;
  StepProfile profile;
  RunData data;
  data.train_epoch = [&](Trainer& t) { return t.train_epoch(loaded); };
  // What --eval-train does: a full inference pass over the training rows after each epoch.
  data.evaluate = [&](const Trainer& t) {
    const Metrics m = t.evaluate(loaded);
    profile = t.step_profile();
    return m;
  };
  train_run(settings, metadata, data);
  CHECK(profile.training_rows == 2 * kRows);
  CHECK(profile.evaluated_rows == 2 * kRows);
}
