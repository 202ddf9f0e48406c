// Model (model.hpp): the tensors it lays out with PyTorch's names, initialisation as a pure
// function of the seed, value semantics, and inference against a hand computation. Errors in
// specs and spans are in settings_test.cpp; gradients in gradient_test.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shardprop/model.hpp"

namespace {

using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::TensorInfo;
using shardprop::TensorRole;

ModelSpec spec_of(int inputs, const char* layers, Loss loss) {
  return ModelSpec{inputs, shardprop::parse_layers(layers), loss};
}

bool same_parameters(const Model& a, const Model& b) {
  return a.parameters().size() == b.parameters().size() &&
         std::memcmp(a.parameters().data(), b.parameters().data(), a.parameters().size_bytes()) ==
             0;
}

}  // namespace

TEST_CASE("a model names and shapes its tensors as PyTorch's nn.Sequential does", "[model]") {
  const Model model(spec_of(4, "dense(3) bn relu dropout(0.5) dense(2)", Loss::xent));
  struct Expected {
    std::string name;
    std::vector<std::int64_t> shape;
    TensorRole role;
  };
  const std::vector<Expected> expected{
      {"0.weight", {3, 4}, TensorRole::weight},
      {"0.bias", {3}, TensorRole::bias},
      {"1.weight", {3}, TensorRole::bias},  // γ: trained, not decayed
      {"1.bias", {3}, TensorRole::bias},    // β
      {"1.running_mean", {3}, TensorRole::running_stat},
      {"1.running_var", {3}, TensorRole::running_stat},
      {"1.num_batches_tracked", {}, TensorRole::batch_counter},
      {"4.weight", {2, 3}, TensorRole::weight},  // relu is 2, dropout 3: indices as in PyTorch
      {"4.bias", {2}, TensorRole::bias},
  };
  const std::vector<TensorInfo>& tensors = model.tensors();
  REQUIRE(tensors.size() == expected.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    CAPTURE(expected[i].name);
    CHECK(tensors[i].name == expected[i].name);
    CHECK(tensors[i].shape == expected[i].shape);
    CHECK(tensors[i].role == expected[i].role);
    if (tensors[i].role == TensorRole::batch_counter) {
      CHECK(tensors[i].offset < model.counters().size());
    } else {
      // Every float tensor starts on a 64-byte boundary of the flat array.
      CHECK(reinterpret_cast<std::uintptr_t>(model.parameters().data() + tensors[i].offset) % 64 ==
            0);
      CHECK(tensors[i].offset + tensors[i].size <= model.parameters().size());
    }
  }
  CHECK(model.inputs() == 4);
  CHECK(model.outputs() == 2);
}

TEST_CASE("initialisation is a pure function of the seed and follows the Glorot and He limits",
          "[model]") {
  const ModelSpec spec = spec_of(50, "dense(40) relu dense(30) tanh dense(3)", Loss::xent);
  Model a(spec), b(spec), c(spec);
  a.initialize(7);
  b.initialize(7);
  c.initialize(8);
  CHECK(same_parameters(a, b));
  CHECK_FALSE(same_parameters(a, c));

  const std::vector<TensorInfo>& t = a.tensors();
  // Layer 0 feeds relu: He uniform, limit √(6/in). Layer 2 feeds tanh: Glorot, √(6/(in+out)).
  const struct {
    std::size_t tensor;
    double limit;
  } dense[] = {{0, std::sqrt(6.0 / 50)}, {2, std::sqrt(6.0 / (40 + 30))}};
  for (const auto& d : dense) {
    CAPTURE(t[d.tensor].name);
    double largest = 0.0, sum_squares = 0.0;
    for (std::size_t i = 0; i < t[d.tensor].size; ++i) {
      const double w = a.parameters()[t[d.tensor].offset + i];
      largest = std::max(largest, std::abs(w));
      sum_squares += w * w;
    }
    CHECK(largest <= d.limit);
    CHECK(largest > 0.95 * d.limit);  // the whole range is used
    // Uniform on [−L, L] has variance L²/3.
    const double variance = sum_squares / static_cast<double>(t[d.tensor].size);
    CHECK(variance == Approx(d.limit * d.limit / 3.0).epsilon(0.1));
  }
  for (std::size_t bias : {std::size_t{1}, std::size_t{3}, std::size_t{5}}) {
    for (std::size_t i = 0; i < t[bias].size; ++i)
      CHECK(a.parameters()[t[bias].offset + i] == 0.0f);
  }
}

TEST_CASE("a model is a value: copies are independent and moves keep the parameters", "[model]") {
  Model original(spec_of(3, "dense(4) bn tanh dense(2)", Loss::mse));
  original.initialize(3);
  Model copy(original);
  CHECK(same_parameters(copy, original));
  CHECK(copy.parameters().data() != original.parameters().data());
  copy.parameters()[0] += 1.0f;
  CHECK_FALSE(same_parameters(copy, original));

  Model assigned(spec_of(1, "dense(1)", Loss::mse));
  assigned = original;
  CHECK(same_parameters(assigned, original));
  CHECK(assigned.tensors().size() == original.tensors().size());

  const std::vector<float> before(original.parameters().begin(), original.parameters().end());
  Model moved(std::move(original));
  CHECK(std::memcmp(moved.parameters().data(), before.data(), before.size() * sizeof(float)) == 0);
}

TEST_CASE("predict computes the textbook forward pass, and the same from many threads", "[model]") {
  // 2 → dense(2) → sigmoid → dense(1), weights set by hand.
  Model model(spec_of(2, "dense(2) sigmoid dense(1)", Loss::mse));
  const std::vector<TensorInfo>& t = model.tensors();
  const float w1[] = {0.5f, -1.0f, 2.0f, 0.25f};  // [out=2, in=2], PyTorch layout
  const float b1[] = {0.1f, -0.2f};
  const float w2[] = {1.5f, -0.5f};
  const float b2[] = {0.3f};
  auto set = [&](std::size_t tensor, const float* values) {
    std::copy_n(values, t[tensor].size, model.parameters().data() + t[tensor].offset);
  };
  set(0, w1);
  set(1, b1);
  set(2, w2);
  set(3, b2);

  const std::vector<float> x{1.0f, 2.0f, -0.5f, 0.0f, 3.0f, -1.0f};  // 3 rows
  auto sigmoid = [](double z) { return 1.0 / (1.0 + std::exp(-z)); };
  std::vector<double> expected;
  for (int r = 0; r < 3; ++r) {
    const double x0 = x[2 * r], x1 = x[2 * r + 1];
    const double h0 = sigmoid(0.5 * x0 - 1.0 * x1 + 0.1);
    const double h1 = sigmoid(2.0 * x0 + 0.25 * x1 - 0.2);
    expected.push_back(1.5 * h0 - 0.5 * h1 + 0.3);
  }
  std::vector<float> y(3);
  model.predict(x, y);
  for (int r = 0; r < 3; ++r) CHECK(y[r] == Approx(expected[r]).epsilon(1e-6));

  // const predict is safe to call concurrently and gives the same bits.
  std::vector<std::vector<float>> results(4, std::vector<float>(3));
  std::vector<std::thread> threads;
  for (auto& result : results) threads.emplace_back([&] { model.predict(x, result); });
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results)
    CHECK(std::memcmp(result.data(), y.data(), 3 * sizeof(float)) == 0);
}
