// End-to-end learning: small problems the textbook solves with backpropagation and the delta
// rule, trained through the public API to a stated quality. Leaves out exact per-step numbers
// (textbook_test, gradient_test); these tests say the pieces add up to a working trainer.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"

namespace {

using shardprop::Activation;
using shardprop::ActivationSpec;
using shardprop::Dataset;
using shardprop::DenseSpec;
using shardprop::Loss;
using shardprop::Metrics;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::Trainer;
using shardprop::TrainerSettings;

constexpr double kPi = 3.14159265358979323846;

TrainerSettings settings(int batch_size, float learning_rate, std::uint64_t seed = 1) {
  TrainerSettings s;
  s.threads = 1;
  s.shards = 1;
  s.batch_size = batch_size;
  s.learning_rate = learning_rate;
  s.seed = seed;
  return s;
}

Dataset xor_data() {
  Dataset data;
  data.rows = 4;
  data.feature_count = 2;
  data.target_width = 1;
  data.features = {0, 0, 0, 1, 1, 0, 1, 1};
  data.targets = {0, 1, 1, 0};  // class indices for xent, probabilities for bce
  return data;
}

}  // namespace

TEST_CASE("A tanh network learns XOR to 100% accuracy with xent and with bce", "[learning]") {
  const auto loss = GENERATE(Loss::xent, Loss::bce);
  const std::uint64_t seed = GENERATE(as<std::uint64_t>{}, 1, 2, 3);
  CAPTURE(to_string(loss), seed);
  const int hidden[] = {8};
  Model model(ModelSpec::mlp(2, hidden, loss == Loss::xent ? 2 : 1, Activation::tanh, loss));
  model.initialize(seed);
  const Dataset data = xor_data();
  Trainer trainer(model, settings(4, 0.5f, seed));

  const Metrics before = trainer.evaluate(data);
  for (int epoch = 0; epoch < 1500; ++epoch) trainer.train_epoch(data);
  const Metrics after = trainer.evaluate(data);
  CAPTURE(before.loss, before.accuracy, after.loss);
  CHECK(after.accuracy == 1.0);
  // Confidently right, not just on the right side of the boundary: xent's loss 0.05 is
  // p(correct) ≈ 0.95 on average.
  CHECK(after.loss < 0.05);
}

TEST_CASE("A tanh network fits sin on [-π, π] to an RMSE below 0.05", "[learning]") {
  // 1 → 32 → tanh → 32 → tanh → 1 with mse; 64 evenly spaced points. sin has amplitude 1, so
  // RMSE 0.05 is a close fit (predicting 0 everywhere gives 0.71, the best straight line 0.43);
  // this setting reaches 0.006–0.01 for seeds 7, 8, 9 (constant-step SGD keeps some jitter).
  Dataset data;
  data.rows = 64;
  data.feature_count = 1;
  data.target_width = 1;
  for (int i = 0; i < data.rows; ++i) {
    const double x = -kPi + 2.0 * kPi * i / 63.0;
    data.features.push_back(static_cast<float>(x));
    data.targets.push_back(static_cast<float>(std::sin(x)));
  }
  const int hidden[] = {32, 32};
  Model model(ModelSpec::mlp(1, hidden, 1, Activation::tanh, Loss::mse));
  model.initialize(7);
  Trainer trainer(model, settings(8, 0.2f, 7));
  for (int epoch = 0; epoch < 1500; ++epoch) trainer.train_epoch(data);
  const Metrics after = trainer.evaluate(data);
  CAPTURE(after.rmse, after.loss);
  CHECK(after.rmse < 0.05);

  // Between the training points too: the fit is a function, not a lookup table.
  std::vector<float> x, y(63);
  for (int i = 0; i < 63; ++i) x.push_back(static_cast<float>(-kPi + 2.0 * kPi * (i + 0.5) / 63));
  model.predict(x, y);
  double squared = 0.0;
  for (int i = 0; i < 63; ++i) squared += std::pow(y[i] - std::sin(x[i]), 2);
  CHECK(std::sqrt(squared / 63) < 0.05);
}

TEST_CASE(
    "The delta rule (one linear unit, mse, one sample per step) separates a linearly "
    "separable set and converges to the least-squares weights",
    "[learning]") {
  // Two clusters of 100 points around (1.5, 1) and (−1.5, −1), each spread uniformly in a
  // square of half-width 1, labelled ±1. Points are drawn from a seeded generator.
  std::mt19937 rng(2718);
  auto uniform = [&](double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(rng() >> 8) / 16777216.0;
  };
  Dataset data;
  data.rows = 200;
  data.feature_count = 2;
  data.target_width = 1;
  for (int i = 0; i < data.rows; ++i) {
    const double label = i % 2 == 0 ? 1.0 : -1.0;
    data.features.push_back(static_cast<float>(label * 1.5 + uniform(-1.0, 1.0)));
    data.features.push_back(static_cast<float>(label * 1.0 + uniform(-1.0, 1.0)));
    data.targets.push_back(static_cast<float>(label));
  }

  ModelSpec spec;
  spec.inputs = 2;
  spec.layers = {DenseSpec{1}, ActivationSpec{Activation::identity}};
  spec.loss = Loss::mse;
  Model model(spec);  // starts at w = 0, b = 0
  {
    Trainer stochastic(model, settings(1, 0.01f));
    for (int epoch = 0; epoch < 20; ++epoch) stochastic.train_epoch(data);
  }
  {
    // A smaller step to settle: with a fixed step the LMS weights wander around the optimum
    // by O(step).
    Trainer settle(model, settings(1, 0.001f, 2));
    for (int epoch = 0; epoch < 10; ++epoch) settle.train_epoch(data);
  }

  std::vector<float> outputs(static_cast<std::size_t>(data.rows));
  model.predict(data.features, outputs);
  int correct = 0;
  for (int i = 0; i < data.rows; ++i) {
    correct += (outputs[i] > 0.0f) == (data.targets[i] > 0.0f) ? 1 : 0;
  }
  CHECK(correct == data.rows);

  // The least-squares solution of [x 1]·[w; b] ≈ t from the normal equations (3×3, in double),
  // which the delta rule minimises by stochastic gradient descent.
  double a[3][4] = {};
  for (int i = 0; i < data.rows; ++i) {
    const double row[3] = {data.features[2 * i], data.features[2 * i + 1], 1.0};
    for (int p = 0; p < 3; ++p) {
      for (int q = 0; q < 3; ++q) a[p][q] += row[p] * row[q];
      a[p][3] += row[p] * data.targets[i];
    }
  }
  for (int p = 0; p < 3; ++p) {  // Gauss–Jordan; the matrix is well conditioned
    for (int r = 0; r < 3; ++r) {
      if (r == p) continue;
      const double f = a[r][p] / a[p][p];
      for (int q = 0; q < 4; ++q) a[r][q] -= f * a[p][q];
    }
  }
  const double least_squares[3] = {a[0][3] / a[0][0], a[1][3] / a[1][1], a[2][3] / a[2][2]};
  const auto learned = model.parameters();
  const float w0 = learned[model.tensors()[0].offset];
  const float w1 = learned[model.tensors()[0].offset + 1];
  const float b = learned[model.tensors()[1].offset];
  CAPTURE(least_squares[0], least_squares[1], least_squares[2], w0, w1, b);
  CHECK_THAT(w0, Catch::Matchers::WithinAbs(least_squares[0], 0.005));
  CHECK_THAT(w1, Catch::Matchers::WithinAbs(least_squares[1], 0.005));
  CHECK_THAT(b, Catch::Matchers::WithinAbs(least_squares[2], 0.005));
}

TEST_CASE("evaluate reports the mean loss, accuracy and RMSE of the model's predictions",
          "[learning]") {
  // 1100 rows: three of evaluate's 512-row chunks, the last one partial. The expected values are
  // computed here in double from predict's outputs with the loss formulas of DESIGN.md.
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  CAPTURE(to_string(loss));
  const int outputs = 3;
  const int hidden[] = {8};
  Model model(ModelSpec::mlp(4, hidden, outputs, Activation::tanh, loss));
  model.initialize(21);
  std::mt19937 rng(22);
  auto uniform = [&](double lo, double hi) {
    return static_cast<float>(lo + (hi - lo) * static_cast<double>(rng() >> 8) / 16777216.0);
  };
  Dataset data;
  data.rows = 1100;
  data.feature_count = 4;
  data.target_width = loss == Loss::xent ? 1 : outputs;
  for (int i = 0; i < 1100 * 4; ++i) data.features.push_back(uniform(-2.0, 2.0));
  for (int i = 0; i < 1100 * data.target_width; ++i) {
    data.targets.push_back(loss == Loss::xent  ? static_cast<float>(rng() % outputs)
                           : loss == Loss::bce ? static_cast<float>(rng() % 2)
                                               : uniform(-1.0, 1.0));
  }
  std::vector<float> y(1100 * outputs);
  model.predict(data.features, y);

  double loss_sum = 0.0, correct = 0.0, predictions = 0.0, squared = 0.0, terms = 0.0;
  for (int r = 0; r < 1100; ++r) {
    const float* z = &y[static_cast<std::size_t>(r) * outputs];
    const float* t = &data.targets[static_cast<std::size_t>(r) * data.target_width];
    if (loss == Loss::xent) {
      double max = z[0];
      int argmax = 0;
      for (int j = 1; j < outputs; ++j) {
        if (z[j] > max) max = z[j], argmax = j;
      }
      double sum = 0.0;
      for (int j = 0; j < outputs; ++j) sum += std::exp(z[j] - max);
      const int label = static_cast<int>(t[0]);
      loss_sum += max + std::log(sum) - z[label];
      correct += argmax == label ? 1.0 : 0.0;
      predictions += 1.0;
      for (int j = 0; j < outputs; ++j) {
        const double e = std::exp(z[j] - max) / sum - (j == label ? 1.0 : 0.0);
        squared += e * e;
        terms += 1.0;
      }
    } else {
      for (int j = 0; j < outputs; ++j) {
        if (loss == Loss::mse) {
          const double e = static_cast<double>(z[j]) - t[j];
          loss_sum += 0.5 * e * e;
          squared += e * e;
        } else {
          const double p = 1.0 / (1.0 + std::exp(-static_cast<double>(z[j])));
          loss_sum += -(t[j] * std::log(p) + (1.0 - t[j]) * std::log(1.0 - p));
          correct += (z[j] > 0.0f) == (t[j] > 0.5f) ? 1.0 : 0.0;
          predictions += 1.0;
          squared += (p - t[j]) * (p - t[j]);
        }
        terms += 1.0;
      }
    }
  }
  const int threads = GENERATE(1, 2);
  CAPTURE(threads);
  TrainerSettings s = settings(32, 0.1f);
  s.threads = threads;
  const Trainer trainer(model, s);
  const Metrics m = trainer.evaluate(data);
  CHECK(m.rows == 1100);
  CHECK_THAT(m.loss, Catch::Matchers::WithinRel(loss_sum / 1100, 1e-6));
  CHECK_THAT(m.rmse, Catch::Matchers::WithinRel(std::sqrt(squared / terms), 1e-6));
  if (loss != Loss::mse) CHECK(m.accuracy == correct / predictions);
}

TEST_CASE("An epoch's loss is the row-weighted mean of its steps' losses before each update",
          "[learning]") {
  // With learning rate 0 nothing moves, so every step's loss is the loss of the same model and
  // the epoch's loss must equal evaluate's, whatever the shuffle and the partial last batch.
  const int hidden[] = {6};
  Model model(ModelSpec::mlp(3, hidden, 2, Activation::sigmoid, Loss::mse));
  model.initialize(3);
  std::mt19937 rng(4);
  Dataset data;
  data.rows = 50;  // batches of 16: 16, 16, 16, 2
  data.feature_count = 3;
  data.target_width = 2;
  for (int i = 0; i < 150; ++i) {
    data.features.push_back(static_cast<float>(rng() % 1000) / 500.0f - 1.0f);
  }
  for (int i = 0; i < 100; ++i) data.targets.push_back(static_cast<float>(rng() % 1000) / 1000.0f);
  Trainer trainer(model, settings(16, 0.0f));
  const Metrics evaluated = trainer.evaluate(data);
  const Metrics epoch = trainer.train_epoch(data);
  CHECK(epoch.rows == 50);
  CHECK_THAT(epoch.loss, Catch::Matchers::WithinRel(evaluated.loss, 1e-6));
  CHECK(trainer.epochs_completed() == 1);
}

TEST_CASE("An epoch's accuracy and RMSE are those of its steps' outputs", "[learning]") {
  // Learning rate 0: every step sees the same model, so the running metrics of the epoch must be
  // evaluate's (no dropout or batch norm: training and inference forward passes agree), for any
  // shard count, thread count and the in-memory or streamed epoch.
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  const int shards = GENERATE(1, 3);
  const int threads = GENERATE(1, 2);
  CAPTURE(to_string(loss), shards, threads);
  const int outputs = 3;
  const int hidden[] = {8};
  Model model(ModelSpec::mlp(4, hidden, outputs, Activation::tanh, loss));
  model.initialize(31);
  std::mt19937 rng(32);
  auto uniform = [&](double lo, double hi) {
    return static_cast<float>(lo + (hi - lo) * static_cast<double>(rng() >> 8) / 16777216.0);
  };
  Dataset data;
  data.rows = 203;  // batches of 32: six full, one of 11
  data.feature_count = 4;
  data.target_width = loss == Loss::xent ? 1 : outputs;
  for (int i = 0; i < 203 * 4; ++i) data.features.push_back(uniform(-2.0, 2.0));
  for (int i = 0; i < 203 * data.target_width; ++i) {
    data.targets.push_back(loss == Loss::xent  ? static_cast<float>(rng() % outputs)
                           : loss == Loss::bce ? static_cast<float>(rng() % 2)
                                               : uniform(-1.0, 1.0));
  }
  TrainerSettings s = settings(32, 0.0f);
  s.shards = shards;
  s.threads = threads;
  Trainer trainer(model, s);
  const Metrics evaluated = trainer.evaluate(data);
  REQUIRE(evaluated.rmse > 0.0);
  if (loss != Loss::mse) REQUIRE(evaluated.accuracy > 0.0);

  const Metrics epoch = trainer.train_epoch(data);
  CHECK(epoch.rows == 203);
  CHECK(epoch.accuracy == evaluated.accuracy);  // counts of right answers: exact
  CHECK_THAT(epoch.rmse, Catch::Matchers::WithinRel(evaluated.rmse, 1e-6));

  // The same through the DataStream overload, in a shuffled order.
  struct Whole final : shardprop::DataStream {
    const Dataset& data;
    bool done = false;
    explicit Whole(const Dataset& d) : data(d) {}
    void rewind() override { done = false; }
    bool next(Dataset& chunk) override {
      if (done) return false;
      chunk = data;
      done = true;
      return true;
    }
  } stream(data);
  const Metrics streamed = trainer.train_epoch(stream);
  CHECK(streamed.rows == 203);
  CHECK(streamed.accuracy == evaluated.accuracy);
  CHECK_THAT(streamed.rmse, Catch::Matchers::WithinRel(evaluated.rmse, 1e-6));
}

TEST_CASE("An epoch's running accuracy follows the model as it learns", "[learning]") {
  // Regression: train_epoch's accuracy was always 0. Once XOR is learned, the steps' own
  // outputs classify every row.
  Model model(ModelSpec::mlp(2, std::vector<int>{8}, 2, Activation::tanh, Loss::xent));
  model.initialize(5);
  Trainer trainer(model, settings(4, 0.5f));
  const Dataset data = xor_data();
  Metrics last;
  for (int epoch = 0; epoch < 400; ++epoch) last = trainer.train_epoch(data);
  CHECK(trainer.evaluate(data).accuracy == 1.0);
  CHECK(last.accuracy == 1.0);  // one full-batch step: the step's outputs are the model's
  CHECK(last.rmse < 0.1);
}
