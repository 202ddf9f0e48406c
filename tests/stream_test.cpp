// Training and evaluating from a stream of chunks: the same results as in memory where the
// order is the same, independent of the chunking, every row once per epoch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>
#include <vector>

#include "chunked_dataset.hpp"
#include "shardprop/communicator.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset_part.hpp"
#include "shardprop/error.hpp"
#include "shardprop/trainer.hpp"

using namespace shardprop;

namespace {

using shardprop::test::ChunkedDataset;

Dataset random_classes(std::int64_t rows, int features, int classes, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Dataset d;
  d.rows = rows;
  d.feature_count = features;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < features; ++j) d.features.push_back(normal(rng) + 5.0f * float(j));
    d.targets.push_back(static_cast<float>(rng() % static_cast<unsigned>(classes)));
  }
  return d;
}

Model small_model() {
  return Model(ModelSpec::mlp(6, std::vector<int>{16}, 3, Activation::tanh, Loss::xent));
}

std::vector<float> train(const Dataset& data, std::int64_t chunk_rows, bool shuffle,
                         std::size_t buffer_bytes, int epochs, bool use_stream) {
  Model model = small_model();
  model.initialize(7);
  TrainerSettings settings;
  settings.batch_size = 16;
  settings.shards = 2;
  settings.learning_rate = 0.05f;
  settings.shuffle = shuffle;
  settings.shuffle_buffer_bytes = buffer_bytes;
  settings.seed = 3;
  Trainer trainer(model, settings);
  ChunkedDataset stream(data, chunk_rows);
  for (int e = 0; e < epochs; ++e) {
    if (use_stream) {
      trainer.train_epoch(stream);
    } else {
      trainer.train_epoch(data);
    }
  }
  return {model.parameters().begin(), model.parameters().end()};
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("without shuffling a streamed epoch equals the in-memory epoch", "[stream]") {
  const Dataset data = random_classes(203, 6, 3, 1);
  const std::int64_t chunk = GENERATE(1, 7, 64, 1000);
  CAPTURE(chunk);
  CHECK(
      bitwise_equal(train(data, chunk, false, 0, 2, true), train(data, chunk, false, 0, 2, false)));
}

TEST_CASE("a shuffled streamed epoch does not depend on the chunking", "[stream]") {
  const Dataset data = random_classes(203, 6, 3, 2);
  const std::size_t buffer = GENERATE(std::size_t{0}, std::size_t{2000}, std::size_t{1} << 20);
  CAPTURE(buffer);
  const std::vector<float> reference = train(data, 203, true, buffer, 2, true);
  for (std::int64_t chunk : {1, 5, 50}) {
    CAPTURE(chunk);
    CHECK(bitwise_equal(train(data, chunk, true, buffer, 2, true), reference));
  }
  SECTION("and it does shuffle") {
    CHECK_FALSE(bitwise_equal(reference, train(data, 203, false, 0, 2, true)));
  }
}

TEST_CASE("a streamed epoch uses every row exactly once", "[stream]") {
  // With η = 0 the weights stay fixed, so the epoch's mean loss is the mean over the rows it
  // used: every row once gives the evaluation loss of the whole set.
  const Dataset data = random_classes(157, 6, 3, 3);
  Model model = small_model();
  model.initialize(1);
  TrainerSettings settings;
  settings.batch_size = 16;
  settings.learning_rate = 0.0f;
  settings.shuffle_buffer_bytes = GENERATE(std::size_t{0}, std::size_t{3000}, std::size_t{1} << 20);
  CAPTURE(settings.shuffle_buffer_bytes);
  Trainer trainer(model, settings);
  ChunkedDataset stream(data, 10);
  const Metrics epoch = trainer.train_epoch(stream);
  CHECK(epoch.rows == 157);
  CHECK(epoch.loss == Approx(trainer.evaluate(data).loss).epsilon(1e-6));
}

TEST_CASE("evaluating and standardizing a stream match the in-memory results", "[stream]") {
  const Dataset data = random_classes(300, 6, 3, 4);
  ChunkedDataset stream(data, 37);
  Model model = small_model();
  model.initialize(2);
  TrainerSettings settings;
  Trainer trainer(model, settings);
  const Metrics a = trainer.evaluate(stream);
  const Metrics b = trainer.evaluate(data);
  CHECK(a.rows == b.rows);
  // Chunks of 37 rows take other product paths than 512-row chunks: rounding differs.
  CHECK(a.loss == Approx(b.loss).epsilon(1e-6));
  CHECK(a.accuracy == b.accuracy);

  const Standardization streamed = Standardization::fit(stream);
  const Standardization whole = Standardization::fit(data);
  // Exact sums around the same first row: the same bits, not just close.
  CHECK(streamed.mean == whole.mean);
  CHECK(streamed.scale == whole.scale);
}

TEST_CASE("a stream with the wrong columns or no rows is rejected", "[stream]") {
  Model model = small_model();
  model.initialize(2);
  Trainer trainer(model, TrainerSettings{});
  const Dataset wrong = random_classes(10, 5, 3, 5);
  ChunkedDataset stream(wrong, 4);
  CHECK_THROWS_WITH(trainer.train_epoch(stream), Catch::Matchers::Contains("5 features"));
  Dataset empty = random_classes(0, 6, 3, 6);
  ChunkedDataset none(empty, 4);
  CHECK_THROWS_WITH(trainer.train_epoch(none), Catch::Matchers::Contains("no rows"));
}

TEST_CASE("a stream part of one process trains as the stream itself", "[stream]") {
  const Dataset data = random_classes(203, 6, 3, 8);
  const std::size_t buffer = GENERATE(std::size_t{0}, std::size_t{2000}, std::size_t{1} << 20);
  CAPTURE(buffer);
  auto train_part = [&](std::int64_t chunk_rows) {
    Model model = small_model();
    model.initialize(7);
    TrainerSettings settings;
    settings.batch_size = 16;
    settings.shards = 2;
    settings.learning_rate = 0.05f;
    settings.shuffle_buffer_bytes = buffer;
    settings.seed = 3;
    Trainer trainer(model, settings);
    ChunkedDataset stream(data, chunk_rows);
    for (int e = 0; e < 2; ++e) trainer.train_epoch(StreamPart{&stream, 0, 203, 203});
    return std::vector<float>(model.parameters().begin(), model.parameters().end());
  };
  const std::vector<float> streamed = train(data, 50, true, buffer, 2, true);
  CHECK(bitwise_equal(train_part(50), streamed));
  CHECK(bitwise_equal(train_part(7), streamed));
}

TEST_CASE("a stream part that fits in the shuffle buffer is read in its first epoch only",
          "[stream]") {
  // Counts the chunks read.
  class CountingStream final : public DataStream {
   public:
    CountingStream(const Dataset& data, std::int64_t chunk_rows) : inner_(data, chunk_rows) {}
    void rewind() override { inner_.rewind(); }
    bool next(Dataset& chunk) override {
      ++chunks;
      return inner_.next(chunk);
    }
    int chunks = 0;

   private:
    ChunkedDataset inner_;
  };
  const Dataset data = random_classes(100, 6, 3, 10);
  Model model = small_model();
  model.initialize(7);
  TrainerSettings settings;
  settings.batch_size = 16;
  // 100 rows of 7 floats fit in 4000 bytes, not in 2000.
  settings.shuffle_buffer_bytes = GENERATE(std::size_t{2000}, std::size_t{4000});
  CAPTURE(settings.shuffle_buffer_bytes);
  Trainer trainer(model, settings);
  CountingStream stream(data, 30);
  trainer.train_epoch(StreamPart{&stream, 0, 100, 100});
  const int first = stream.chunks;
  CHECK(first == 5);  // 4 chunks and the end
  const Metrics second = trainer.train_epoch(StreamPart{&stream, 0, 100, 100});
  CHECK(second.rows == 100);
  CHECK(stream.chunks == (settings.shuffle_buffer_bytes == 4000 ? first : 2 * first));
}

TEST_CASE("an epoch of a stream part kept in the shuffle buffer, stopped inside, continues bitwise",
          "[stream][stop]") {
  const Dataset data = random_classes(100, 6, 3, 10);
  Model whole_model = small_model();
  whole_model.initialize(7);
  Model stopped_model = whole_model;
  TrainerSettings settings;
  settings.batch_size = 16;
  settings.shuffle_buffer_bytes = 4000;  // all 100 rows of 7 floats: kept after epoch 1
  Trainer whole(whole_model, settings), stopped(stopped_model, settings);
  ChunkedDataset a(data, 30), b(data, 30);
  StopFlag flag{0};
  int steps = 0;
  stopped.set_stop_flag(&flag);
  stopped.set_step_callback([&] {
    if (++steps == 9) flag.store(1);  // inside epoch 2, whose rows come from the buffer
  });
  for (int epoch = 0; epoch < 3; ++epoch) whole.train_epoch(StreamPart{&a, 0, 100, 100});
  stopped.train_epoch(StreamPart{&b, 0, 100, 100});
  stopped.train_epoch(StreamPart{&b, 0, 100, 100});
  REQUIRE(stopped.epochs_completed() == 1);
  REQUIRE(stopped.epoch_position().step > 0);
  flag.store(0);
  stopped.train_epoch(StreamPart{&b, 0, 100, 100});  // the rest of epoch 2, read again
  stopped.train_epoch(StreamPart{&b, 0, 100, 100});
  CHECK(stopped.epochs_completed() == 3);
  CHECK(std::memcmp(stopped_model.parameters().data(), whole_model.parameters().data(),
                    whole_model.parameters().size_bytes()) == 0);
}

TEST_CASE("a stream part that ends before its rows is a collective error", "[stream]") {
  const Dataset data = random_classes(40, 6, 3, 9);
  Model model = small_model();
  model.initialize(2);
  TrainerSettings settings;
  settings.batch_size = 16;
  Trainer trainer(model, settings);
  ChunkedDataset stream(data, 7);
  CHECK_THROWS_AS(trainer.train_epoch(StreamPart{&stream, 0, 45, 45}), CollectiveError);
  CHECK_THROWS_WITH(trainer.train_epoch(StreamPart{&stream, 0, 45, 45}),
                    Catch::Matchers::Contains("ended after 40 of its 45 rows"));
  const Dataset wrong = random_classes(10, 5, 3, 5);
  ChunkedDataset wrong_stream(wrong, 4);
  CHECK_THROWS_AS(trainer.train_epoch(StreamPart{&wrong_stream, 0, 10, 10}), CollectiveError);
}

TEST_CASE("A split stream's two parts partition the rows, whatever the chunking", "[stream]") {
  Dataset data;
  data.rows = 5000;
  data.feature_count = 1;
  data.target_width = 1;
  for (std::int64_t r = 0; r < data.rows; ++r) {
    data.features.push_back(static_cast<float>(r));  // the row's own index, to trace it
    data.targets.push_back(static_cast<float>(r % 3));
  }
  auto rows_of = [&](std::int64_t chunk_rows, shardprop::SplitStream::Part part) {
    ChunkedDataset source(data, chunk_rows);
    shardprop::SplitStream split(source, 0.2, /*seed=*/9, part);
    std::vector<float> seen;
    Dataset chunk;
    for (int pass = 0; pass < 2; ++pass) {  // a second pass after rewind gives the same rows
      split.rewind();
      std::vector<float> this_pass;
      while (split.next(chunk)) {
        REQUIRE(chunk.rows > 0);
        REQUIRE(chunk.features.size() == static_cast<std::size_t>(chunk.rows));
        for (std::int64_t r = 0; r < chunk.rows; ++r) {
          CHECK(chunk.targets[r] == static_cast<float>(static_cast<int>(chunk.features[r]) % 3));
        }
        this_pass.insert(this_pass.end(), chunk.features.begin(), chunk.features.end());
      }
      if (pass == 1) CHECK(this_pass == seen);
      seen = this_pass;
    }
    return seen;
  };
  const std::vector<float> training = rows_of(5000, shardprop::SplitStream::Part::training);
  const std::vector<float> held_out = rows_of(5000, shardprop::SplitStream::Part::validation);
  CHECK(std::is_sorted(training.begin(), training.end()));  // file order kept
  CHECK(std::is_sorted(held_out.begin(), held_out.end()));
  std::vector<float> all = training;
  all.insert(all.end(), held_out.begin(), held_out.end());
  std::sort(all.begin(), all.end());
  CHECK(all == data.features);   // every row exactly once
  CHECK(held_out.size() > 900);  // about 20% of 5000
  CHECK(held_out.size() < 1100);

  const std::int64_t chunk_rows = GENERATE(1, 7, 1000);
  CAPTURE(chunk_rows);
  CHECK(rows_of(chunk_rows, shardprop::SplitStream::Part::validation) == held_out);
  CHECK(rows_of(chunk_rows, shardprop::SplitStream::Part::training) == training);
}

TEST_CASE("A split stream needs a fraction in (0, 1)", "[stream]") {
  Dataset data;
  data.rows = 1;
  data.feature_count = 1;
  data.features = {1.0f};
  data.targets = {0.0f};
  ChunkedDataset source(data, 1);
  for (double fraction : {0.0, 1.0, -0.5, 2.0}) {
    CAPTURE(fraction);
    CHECK_THROWS_WITH(
        shardprop::SplitStream(source, fraction, 1, shardprop::SplitStream::Part::training),
        Catch::Matchers::Contains("must be in (0, 1)"));
  }
}

namespace {

// Fails on reading chunk `fail_at` (0-based), after handing out the ones before it.
class FailingStream final : public DataStream {
 public:
  FailingStream(DataStream& inner, int fail_at) : inner_(inner), fail_at_(fail_at) {}
  void rewind() override {
    inner_.rewind();
    read_ = 0;
  }
  bool next(Dataset& chunk) override {
    if (read_ == fail_at_) throw Error("data.csv:7: bad field");
    ++read_;
    return inner_.next(chunk);
  }

 private:
  DataStream& inner_;
  int fail_at_;
  int read_ = 0;
};

Dataset numbered_rows(int rows) {
  Dataset d;
  d.rows = rows;
  d.feature_count = 1;
  d.target_width = 1;
  for (int r = 0; r < rows; ++r) {
    d.features.push_back(static_cast<float>(r));
    d.targets.push_back(0.0f);
  }
  return d;
}

}  // namespace

TEST_CASE("for_each_chunk works on every chunk once, in order, while reading the next",
          "[stream][read_ahead]") {
  const Dataset data = numbered_rows(1000);
  const std::int64_t chunk_rows = GENERATE(1, 7, 999, 1000, 5000);
  test::ChunkedDataset stream(data, chunk_rows);
  Dataset skip;
  stream.next(skip);  // for_each_chunk starts from the first row all the same
  std::vector<float> seen;
  for_each_chunk(stream, [&](const Dataset& chunk) {
    seen.insert(seen.end(), chunk.features.begin(), chunk.features.end());
  });
  CHECK(seen == data.features);

  SECTION("an empty stream calls nothing") {
    const Dataset none = numbered_rows(0);
    test::ChunkedDataset empty(none, 4);
    int calls = 0;
    for_each_chunk(empty, [&](const Dataset&) { ++calls; });
    CHECK(calls == 0);
  }
}

TEST_CASE("for_each_chunk passes on the errors of the work and of reading",
          "[stream][read_ahead]") {
  const Dataset data = numbered_rows(100);
  test::ChunkedDataset chunks(data, 10);
  SECTION("the work's error stops the pass at its chunk") {
    int calls = 0;
    CHECK_THROWS_WITH(for_each_chunk(chunks,
                                     [&](const Dataset&) {
                                       if (++calls == 3) throw Error("work failed");
                                     }),
                      "work failed");
    CHECK(calls == 3);
  }
  SECTION("a read error comes after the chunks before it were worked on") {
    FailingStream failing(chunks, 4);
    std::int64_t rows = 0;
    CHECK_THROWS_WITH(for_each_chunk(failing, [&](const Dataset& c) { rows += c.rows; }),
                      "data.csv:7: bad field");
    CHECK(rows == 40);
  }
}
