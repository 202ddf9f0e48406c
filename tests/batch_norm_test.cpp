// Batch normalization: gradients, synchronized statistics across shards and threads,
// numerical stability, running statistics and inference mode.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "nn/batch_norm.hpp"
#include "nn/network.hpp"
#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/trainer.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;

namespace {

// dense(5) bn tanh dense(4) bn relu dense(outputs): two batch norms, so four combines per step.
ModelSpec two_bn_spec(int inputs, int outputs, Loss loss) {
  ModelSpec spec;
  spec.inputs = inputs;
  spec.loss = loss;
  spec.layers = {DenseSpec{5},      BatchNormSpec{}, ActivationSpec{Activation::tanh},
                 DenseSpec{4},      BatchNormSpec{}, ActivationSpec{Activation::relu},
                 DenseSpec{outputs}};
  return spec;
}

struct Batch {
  std::vector<float> x, t;
};

Batch random_batch(int rows, int inputs, int outputs, Loss loss, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Batch b;
  for (int i = 0; i < rows * inputs; ++i) b.x.push_back(normal(rng));
  for (int r = 0; r < rows; ++r) {
    if (loss == Loss::xent) {
      b.t.push_back(static_cast<float>(r % outputs));
    } else {
      for (int j = 0; j < outputs; ++j)
        b.t.push_back(loss == Loss::bce ? float(r % 2) : normal(rng));
    }
  }
  return b;
}

// Perturbs γ and β away from 1 and 0 so their gradients are not special.
void randomize_batch_norm(Model& model, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.5f, 1.5f);
  for (const TensorInfo& t : model.tensors()) {
    if (t.role != TensorRole::bias) continue;
    for (std::size_t i = 0; i < t.size; ++i) model.parameters()[t.offset + i] = u(rng) - 0.5f;
  }
}

double mean_loss(const Model& model, const Batch& b) {
  const detail::Network& net = shardprop::detail::network_of(model);
  detail::ShardWorkspace ws = net.make_workspace(static_cast<int>(b.t.size()));
  std::vector<float> grads(net.parameter_count);
  const int rows = static_cast<int>(b.x.size()) / net.spec.inputs;
  const detail::ConstMatrix x{b.x.data(), rows, net.spec.inputs, net.spec.inputs};
  return net.training_pass(net.parameters.data(), x, b.t.data(), 1.0f / static_cast<float>(rows),
                           ws, grads.data()) /
         rows;
}

}  // namespace

TEST_CASE("batch-norm gradients match central finite differences for γ, β and the layer input",
          "[batchnorm][gradient]") {
  const Loss loss = GENERATE(Loss::mse, Loss::xent);
  const unsigned seed = GENERATE(1u, 2u);
  CAPTURE(to_string(loss), seed);
  const int inputs = 3, outputs = 3, rows = 7;
  Model model(two_bn_spec(inputs, outputs, loss));
  model.initialize(seed);
  randomize_batch_norm(model, seed);
  const Batch batch = random_batch(rows, inputs, outputs, loss, seed);

  const detail::Network& net = shardprop::detail::network_of(model);
  detail::ShardWorkspace ws = net.make_workspace(rows);
  std::vector<float> grads(net.parameter_count, 0.0f);
  const detail::ConstMatrix x{batch.x.data(), rows, inputs, inputs};
  net.training_pass(net.parameters.data(), x, batch.t.data(), 1.0f / static_cast<float>(rows), ws,
                    grads.data());

  // Every trained tensor: dense W and b (their gradients flow through the batch norms' dx),
  // and γ, β. Float32 network, step 1e-2 on O(1) values: truncation O(h²) ≈ 1e-4 and rounding
  // ≈ 1e-7/h ≈ 1e-5, so 2e-3 absolute + 2% relative separates right from wrong.
  const float h = 1e-2f;
  int checked = 0;
  for (const TensorInfo& t : model.tensors()) {
    if (!t.trained()) continue;
    for (std::size_t i = 0; i < t.size; ++i) {
      float& p = model.parameters()[t.offset + i];
      const float saved = p;
      p = saved + h;
      const double up = mean_loss(model, batch);
      p = saved - h;
      const double down = mean_loss(model, batch);
      p = saved;
      const double numeric = (up - down) / (2.0 * h);
      CAPTURE(t.name, i, numeric, grads[t.offset + i]);
      REQUIRE(grads[t.offset + i] == Approx(numeric).margin(2e-3).epsilon(0.02));
      ++checked;
    }
  }
  CHECK(checked > 60);
}

TEST_CASE("a sharded step with batch norm equals the unsharded step", "[batchnorm][sharding]") {
  const Loss loss = GENERATE(Loss::mse, Loss::xent);
  CAPTURE(to_string(loss));
  const int inputs = 6, outputs = 3, rows = 23;
  Model reference(two_bn_spec(inputs, outputs, loss));
  reference.initialize(11);
  randomize_batch_norm(reference, 11);
  const Model initial = reference;
  const Batch batch = random_batch(rows, inputs, outputs, loss, 5);

  TrainerSettings settings;
  settings.batch_size = rows;
  settings.learning_rate = 0.1f;
  settings.shards = 1;
  settings.threads = 1;
  {
    Trainer trainer(reference, settings);
    trainer.step(batch.x, batch.t);
    trainer.step(batch.x, batch.t);
  }

  const int shards = GENERATE(1, 2, 3, 5, 8);
  const int threads = GENERATE(1, 2, 4);
  CAPTURE(shards, threads);
  Model model = initial;
  settings.shards = shards;
  settings.threads = threads;
  Trainer trainer(model, settings);
  trainer.step(batch.x, batch.t);
  trainer.step(batch.x, batch.t);

  // 1e-6 relative, with a floor of 1e-6 absolute for values that are zero up to rounding.
  const std::span<const float> a = reference.parameters();
  const std::span<const float> b = model.parameters();
  for (const TensorInfo& t : model.tensors()) {
    if (t.role == TensorRole::batch_counter) {
      CHECK(model.counters()[t.offset] == 2);
      CHECK(reference.counters()[t.offset] == 2);
      continue;
    }
    for (std::size_t i = 0; i < t.size; ++i) {
      CAPTURE(t.name, i);
      REQUIRE(b[t.offset + i] == Approx(a[t.offset + i]).epsilon(1e-6).margin(1e-6));
    }
  }
}

TEST_CASE("with batch norm, weights are bitwise identical across thread counts",
          "[batchnorm][determinism]") {
  const int shards = GENERATE(3, 5);
  CAPTURE(shards);
  const int inputs = 16, outputs = 4, rows = 40;
  std::vector<float> first;
  for (int threads : {1, 2, 3, 4, 8}) {
    CAPTURE(threads);
    Model model(two_bn_spec(inputs, outputs, Loss::xent));
    model.initialize(3);
    TrainerSettings settings;
    settings.batch_size = rows;
    settings.shards = shards;
    settings.threads = threads;
    settings.learning_rate = 0.05f;
    Trainer trainer(model, settings);
    for (unsigned step = 0; step < 4; ++step) {
      const Batch batch = random_batch(rows, inputs, outputs, Loss::xent, 100 + step);
      trainer.step(batch.x, batch.t);
    }
    const std::span<const float> p = model.parameters();
    if (first.empty()) {
      first.assign(p.begin(), p.end());
    } else {
      REQUIRE(std::memcmp(first.data(), p.data(), p.size_bytes()) == 0);
    }
  }
}

TEST_CASE("batch-norm statistics stay exact for features with a large mean and small spread",
          "[batchnorm][stability]") {
  // Mean 1e4, standard deviation 1e-2: Σz² − (Σz)²/n loses every significant digit in float
  // and about four in double; the two-pass moments and Chan's merge keep them.
  const int width = 3, rows = 257;
  std::mt19937 rng(9);
  std::normal_distribution<double> normal(1.0e4, 1.0e-2);
  std::vector<float> z(static_cast<std::size_t>(rows) * width);
  for (float& v : z) v = static_cast<float>(normal(rng));

  // The reference: two passes in long double over the same float values.
  std::vector<long double> mean(width, 0.0L), var(width, 0.0L);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < width; ++j) mean[j] += z[r * width + j];
  }
  for (int j = 0; j < width; ++j) mean[j] /= rows;
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < width; ++j) {
      const long double d = z[r * width + j] - mean[j];
      var[j] += d * d;
    }
  }
  for (int j = 0; j < width; ++j) var[j] /= rows;

  SECTION("moments merged over uneven shards equal the whole batch's") {
    detail::BatchNorm bn;
    bn.width = width;
    const int cuts[] = {0, 1, 2, 100, 101, rows};  // shards of 1, 1, 98, 1 and 156 rows
    double count = 0.0;
    std::vector<double> m(width, 0.0), m2(width, 0.0);
    for (int s = 0; s + 1 < 6; ++s) {
      double c = 0.0;
      std::vector<double> sm(width), sm2(width);
      const detail::ConstMatrix part{z.data() + cuts[s] * width, cuts[s + 1] - cuts[s], width,
                                     width};
      bn.partial_moments(part, {&c, sm.data(), sm2.data()});
      detail::merge_moments({&count, m.data(), m2.data()}, &c, sm.data(), sm2.data(), width);
    }
    CHECK(count == rows);
    for (int j = 0; j < width; ++j) {
      CHECK(m[j] == Approx(static_cast<double>(mean[j])).epsilon(1e-15));
      CHECK(m2[j] / rows == Approx(static_cast<double>(var[j])).epsilon(1e-9));
    }
  }

  SECTION("a training step normalizes them to zero mean and unit variance") {
    ModelSpec spec;
    spec.inputs = width;
    spec.loss = Loss::mse;
    spec.layers = {BatchNormSpec{1e-12f, 0.1f}, DenseSpec{1}};
    Model model(spec);
    model.initialize(1);
    const detail::Network& net = shardprop::detail::network_of(model);
    detail::ShardWorkspace ws = net.make_workspace(rows);
    std::vector<float> grads(net.parameter_count), targets(rows, 0.0f);
    net.training_pass(net.parameters.data(), {z.data(), rows, width, width}, targets.data(),
                      1.0f / static_cast<float>(rows), ws, grads.data());
    // Layer 0's output is γ·xhat + β with γ = 1, β = 0.
    for (int r = 0; r < rows; ++r) {
      for (int j = 0; j < width; ++j) {
        const double expected =
            static_cast<double>((z[r * width + j] - mean[j]) / std::sqrt(var[j]));
        CAPTURE(r, j);
        REQUIRE(ws.outputs[0][r * width + j] == Approx(expected).margin(1e-4));
      }
    }
  }
}

TEST_CASE("running statistics follow PyTorch's BatchNorm1d convention", "[batchnorm][running]") {
  const int inputs = 2, rows = 5;
  ModelSpec spec;
  spec.inputs = inputs;
  spec.loss = Loss::mse;
  spec.layers = {BatchNormSpec{}, DenseSpec{1}};
  Model model(spec);
  model.initialize(1);
  const std::vector<float> x = {1, 10, 2, 20, 3, 30, 4, 40, 6, 60};
  const std::vector<float> t(rows, 0.0f);
  TrainerSettings settings;
  settings.batch_size = rows;
  settings.shards = 2;
  settings.learning_rate = 0.0f;
  Trainer trainer(model, settings);
  trainer.step(x, t);
  trainer.step(x, t);
  // Batch mean (3.2, 32), unbiased variance (3.7, 370); momentum 0.1 from (0, 1), twice.
  const float* p = model.parameters().data();
  const auto find = [&](const std::string& name) -> const TensorInfo& {
    for (const TensorInfo& info : model.tensors()) {
      if (info.name == name) return info;
    }
    FAIL("no tensor " << name);
    return model.tensors().front();
  };
  const double mean[] = {3.2, 32.0}, unbiased[] = {3.7, 370.0};
  for (int j = 0; j < inputs; ++j) {
    const double m1 = 0.1 * mean[j], m2 = 0.9 * m1 + 0.1 * mean[j];
    const double v1 = 0.9 + 0.1 * unbiased[j], v2 = 0.9 * v1 + 0.1 * unbiased[j];
    CHECK(p[find("0.running_mean").offset + j] == Approx(m2).epsilon(1e-6));
    CHECK(p[find("0.running_var").offset + j] == Approx(v2).epsilon(1e-6));
  }
  CHECK(model.counters()[find("0.num_batches_tracked").offset] == 2);
}

TEST_CASE("evaluation uses the running statistics and does not change them",
          "[batchnorm][inference]") {
  const int inputs = 4, outputs = 3, rows = 30;
  Model model(two_bn_spec(inputs, outputs, Loss::xent));
  model.initialize(2);
  TrainerSettings settings;
  settings.batch_size = 10;
  settings.shards = 2;
  settings.learning_rate = 0.05f;
  Trainer trainer(model, settings);
  Dataset data;
  const Batch b = random_batch(rows, inputs, outputs, Loss::xent, 8);
  data.rows = rows;
  data.feature_count = inputs;
  data.features = b.x;
  data.targets = b.t;
  trainer.train_epoch(data);

  const Model before = model;
  const Metrics first = trainer.evaluate(data);
  const Metrics second = trainer.evaluate(data);
  CHECK(first.loss == second.loss);
  REQUIRE(std::memcmp(before.parameters().data(), model.parameters().data(),
                      model.parameters().size_bytes()) == 0);
  REQUIRE(std::memcmp(before.counters().data(), model.counters().data(),
                      model.counters().size_bytes()) == 0);

  SECTION("one row predicts the same alone as inside a batch") {
    std::vector<float> all(static_cast<std::size_t>(rows) * outputs), one(outputs);
    model.predict(data.features, all);
    model.predict(data.row_features(17), one);
    for (int j = 0; j < outputs; ++j) CHECK(one[j] == all[17 * outputs + j]);
  }
}

TEST_CASE("a one-row minibatch cannot train batch norm", "[batchnorm][settings]") {
  Model model(two_bn_spec(2, 2, Loss::xent));
  model.initialize(1);
  TrainerSettings settings;
  settings.batch_size = 4;
  Trainer trainer(model, settings);
  const std::vector<float> x = {0.5f, -1.0f}, t = {1.0f};
  REQUIRE_THROWS_WITH(trainer.step(x, t), Contains("1 row") && Contains("batch normalization"));

  SECTION("an epoch skips a last minibatch of one row") {
    Dataset data;
    data.rows = 9;  // batches of 4, 4 and 1
    data.feature_count = 2;
    const Batch b = random_batch(9, 2, 2, Loss::xent, 3);
    data.features = b.x;
    data.targets = b.t;
    const Metrics m = trainer.train_epoch(data);
    CHECK(m.rows == 8);
    CHECK(model.counters()[0] == 2);
  }
}

TEST_CASE("batch-norm tensors round-trip through safetensors with PyTorch names",
          "[batchnorm][checkpoint]") {
  Model model(two_bn_spec(3, 2, Loss::xent));
  model.initialize(4);
  randomize_batch_norm(model, 4);
  model.counters()[0] = 7;
  model.counters()[1] = 7;
  std::vector<std::string> names;
  for (const TensorInfo& t : model.tensors()) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias",
                                          "1.running_mean", "1.running_var",
                                          "1.num_batches_tracked", "3.weight", "3.bias", "4.weight",
                                          "4.bias", "4.running_mean", "4.running_var",
                                          "4.num_batches_tracked", "6.weight", "6.bias"});
  const auto path = std::filesystem::temp_directory_path() / "shardprop_bn_roundtrip.safetensors";
  save_safetensors(model, path);
  Model loaded(two_bn_spec(3, 2, Loss::xent));
  load_safetensors(loaded, path);
  std::filesystem::remove(path);
  CHECK(std::memcmp(model.parameters().data(), loaded.parameters().data(),
                    model.parameters().size_bytes()) == 0);
  CHECK(loaded.counters()[0] == 7);
  CHECK(loaded.counters()[1] == 7);
}
