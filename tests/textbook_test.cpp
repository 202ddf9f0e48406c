// The textbook's 2-3-2 sigmoid network with L2 loss (/work/shared/textbook/000): one SGD step
// computed by hand from its delta formulas, in double, against the library's Trainer::step.
// Leaves out other activations and losses (gradient_test) and sharding (sharding_test).
//
// Notation (the textbook's): inputs x_i, hidden h_j = σ(a1_j), a1_j = Σ_i x_i w_ij + b1_j,
// outputs y_k = σ(a2_k), a2_k = Σ_j h_j u_jk + b2_k, L = ½ Σ_k (y_k − t_k)².
//   output delta  δ2_k = (y_k − t_k) y_k (1 − y_k),           ∂L/∂u_jk = δ2_k h_j, ∂L/∂b2_k = δ2_k
//   hidden delta  δ1_j = Σ_k δ2_k u_jk · h_j (1 − h_j),       ∂L/∂w_ij = δ1_j x_i, ∂L/∂b1_j = δ1_j
// The textbook indexes w_ij from input i to hidden j; the library stores PyTorch's [out, in]:
// tensor "0.weight" has shape [3, 2] and element [j][i] is w_ij; "2.weight" has shape [2, 3]
// and element [k][j] is u_jk. The library's mse is the batch mean of L, so a batch's gradient is
// the mean of the per-sample gradients above.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"

namespace {

using shardprop::Activation;
using shardprop::ActivationSpec;
using shardprop::DenseSpec;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::TensorInfo;

// The network in the textbook's notation, in double.
struct TextbookNet {
  double w[2][3];  // input i → hidden j
  double b1[3];
  double u[3][2];  // hidden j → output k
  double b2[2];
};

// Specific, asymmetric values (no two weights alike, mixed signs) so that a transposed layout or
// a swapped index changes the result.
constexpr TextbookNet kStart = {
    {{0.15, -0.25, 0.35}, {0.20, 0.30, -0.40}},
    {0.35, -0.10, 0.05},
    {{0.40, -0.50}, {0.45, 0.55}, {-0.30, 0.60}},
    {0.60, -0.20},
};

struct Sample {
  double x[2];
  double t[2];
};

double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }

struct Forward {
  double h[3];
  double y[2];
};

Forward forward(const TextbookNet& n, const Sample& s) {
  Forward f{};
  for (int j = 0; j < 3; ++j) {
    double a1 = n.b1[j];
    for (int i = 0; i < 2; ++i) a1 += s.x[i] * n.w[i][j];
    f.h[j] = sigmoid(a1);
  }
  for (int k = 0; k < 2; ++k) {
    double a2 = n.b2[k];
    for (int j = 0; j < 3; ++j) a2 += f.h[j] * n.u[j][k];
    f.y[k] = sigmoid(a2);
  }
  return f;
}

// One SGD step on the batch mean of L with the textbook's formulas. Returns the mean loss
// before the step (what Trainer::step returns).
double textbook_step(TextbookNet& n, const std::vector<Sample>& batch, double learning_rate) {
  TextbookNet grad{};
  double loss = 0.0;
  for (const Sample& s : batch) {
    const Forward f = forward(n, s);
    double delta2[2];
    for (int k = 0; k < 2; ++k) {
      loss += 0.5 * (f.y[k] - s.t[k]) * (f.y[k] - s.t[k]);
      delta2[k] = (f.y[k] - s.t[k]) * f.y[k] * (1.0 - f.y[k]);
    }
    double delta1[3];
    for (int j = 0; j < 3; ++j) {
      double back = 0.0;
      for (int k = 0; k < 2; ++k) back += delta2[k] * n.u[j][k];
      delta1[j] = back * f.h[j] * (1.0 - f.h[j]);
    }
    for (int k = 0; k < 2; ++k) {
      grad.b2[k] += delta2[k];
      for (int j = 0; j < 3; ++j) grad.u[j][k] += delta2[k] * f.h[j];
    }
    for (int j = 0; j < 3; ++j) {
      grad.b1[j] += delta1[j];
      for (int i = 0; i < 2; ++i) grad.w[i][j] += delta1[j] * s.x[i];
    }
  }
  const double step = learning_rate / static_cast<double>(batch.size());  // mean over the batch
  for (int j = 0; j < 3; ++j) {
    n.b1[j] -= step * grad.b1[j];
    for (int i = 0; i < 2; ++i) n.w[i][j] -= step * grad.w[i][j];
    for (int k = 0; k < 2; ++k) n.u[j][k] -= step * grad.u[j][k];
  }
  for (int k = 0; k < 2; ++k) n.b2[k] -= step * grad.b2[k];
  return loss / static_cast<double>(batch.size());
}

ModelSpec textbook_spec() {
  ModelSpec spec;
  spec.inputs = 2;
  spec.layers = {DenseSpec{3}, ActivationSpec{Activation::sigmoid}, DenseSpec{2},
                 ActivationSpec{Activation::sigmoid}};
  spec.loss = Loss::mse;
  return spec;
}

const TensorInfo& tensor(const Model& model, const std::string& name) {
  for (const TensorInfo& t : model.tensors()) {
    if (t.name == name) return t;
  }
  FAIL("the model has no tensor " << name);
  throw std::logic_error("unreachable");
}

// Pointers to the library's copy of each textbook quantity, by tensor name and PyTorch layout.
struct LibraryView {
  const float* weight0;  // "0.weight" [3, 2]: [j][i] = w_ij
  const float* bias0;    // "0.bias"   [3]
  const float* weight2;  // "2.weight" [2, 3]: [k][j] = u_jk
  const float* bias2;    // "2.bias"   [2]
  float w(int i, int j) const { return weight0[j * 2 + i]; }
  float b1(int j) const { return bias0[j]; }
  float u(int j, int k) const { return weight2[k * 3 + j]; }
  float b2(int k) const { return bias2[k]; }
};

LibraryView view_of(const Model& model) {
  const auto shape = [&](const std::string& name) { return tensor(model, name).shape; };
  REQUIRE(shape("0.weight") == std::vector<std::int64_t>{3, 2});
  REQUIRE(shape("0.bias") == std::vector<std::int64_t>{3});
  REQUIRE(shape("2.weight") == std::vector<std::int64_t>{2, 3});
  REQUIRE(shape("2.bias") == std::vector<std::int64_t>{2});
  const float* p = model.parameters().data();
  return {p + tensor(model, "0.weight").offset, p + tensor(model, "0.bias").offset,
          p + tensor(model, "2.weight").offset, p + tensor(model, "2.bias").offset};
}

// Writes the textbook values into the model, transposing into [out, in].
void load(Model& model, const TextbookNet& n) {
  float* p = model.parameters().data();
  const std::size_t w0 = tensor(model, "0.weight").offset, b0 = tensor(model, "0.bias").offset;
  const std::size_t w2 = tensor(model, "2.weight").offset, b2 = tensor(model, "2.bias").offset;
  for (int j = 0; j < 3; ++j) {
    p[b0 + j] = static_cast<float>(n.b1[j]);
    for (int i = 0; i < 2; ++i) p[w0 + j * 2 + i] = static_cast<float>(n.w[i][j]);
  }
  for (int k = 0; k < 2; ++k) {
    p[b2 + k] = static_cast<float>(n.b2[k]);
    for (int j = 0; j < 3; ++j) p[w2 + k * 3 + j] = static_cast<float>(n.u[j][k]);
  }
}

TextbookNet as_float(const TextbookNet& n) {  // the values the float model actually starts from
  TextbookNet r = n;
  for (int j = 0; j < 3; ++j) {
    r.b1[j] = static_cast<float>(n.b1[j]);
    for (int i = 0; i < 2; ++i) r.w[i][j] = static_cast<float>(n.w[i][j]);
    for (int k = 0; k < 2; ++k) r.u[j][k] = static_cast<float>(n.u[j][k]);
  }
  for (int k = 0; k < 2; ++k) r.b2[k] = static_cast<float>(n.b2[k]);
  return r;
}

// The library computes in float: parameters of size ≤ 1 after a step differ from the double
// computation by float rounding of the forward and backward passes, ≈1e-7. The updates
// themselves are ~1e-3 to 1e-1 here, so 2e-6 checks them to about 0.1% or better.
constexpr double kTolerance = 2e-6;

void check_equal(const Model& model, const TextbookNet& want, const TextbookNet& start) {
  const LibraryView got = view_of(model);
  double smallest_update = 1e9;
  auto check = [&](const char* what, int a, int b, float library, double textbook, double before) {
    CAPTURE(what, a, b, library, textbook);
    CHECK_THAT(library, Catch::Matchers::WithinAbs(textbook, kTolerance));
    smallest_update = std::min(smallest_update, std::fabs(textbook - before));
  };
  for (int j = 0; j < 3; ++j) {
    check("b1_j", j, 0, got.b1(j), want.b1[j], start.b1[j]);
    for (int i = 0; i < 2; ++i) check("w_ij", i, j, got.w(i, j), want.w[i][j], start.w[i][j]);
    for (int k = 0; k < 2; ++k) check("u_jk", j, k, got.u(j, k), want.u[j][k], start.u[j][k]);
  }
  for (int k = 0; k < 2; ++k) check("b2_k", k, 0, got.b2(k), want.b2[k], start.b2[k]);
  // Every parameter moved by far more than the tolerance: the comparison sees the update.
  CHECK(smallest_update > 50 * kTolerance);
}

shardprop::TrainerSettings settings_for(int batch_size, float learning_rate) {
  shardprop::TrainerSettings settings;
  settings.threads = 1;
  settings.shards = 1;
  settings.batch_size = batch_size;
  settings.learning_rate = learning_rate;
  settings.shuffle = false;
  return settings;
}

std::vector<float> features_of(const std::vector<Sample>& batch) {
  std::vector<float> x;
  for (const Sample& s : batch) {
    x.insert(x.end(), {static_cast<float>(s.x[0]), static_cast<float>(s.x[1])});
  }
  return x;
}

std::vector<float> targets_of(const std::vector<Sample>& batch) {
  std::vector<float> t;
  for (const Sample& s : batch) {
    t.insert(t.end(), {static_cast<float>(s.t[0]), static_cast<float>(s.t[1])});
  }
  return t;
}

// Sample values are exact in float (multiples of 1/64), so both sides see the same inputs.
const std::vector<Sample> kOneSample = {{{0.5, -0.75}, {0.015625, 0.984375}}};
const std::vector<Sample> kBatch = {
    {{0.5, -0.75}, {0.015625, 0.984375}},
    {{-1.0, 0.25}, {0.984375, 0.015625}},
    {{0.125, 1.5}, {0.5, 0.75}},
    {{2.0, 0.0}, {0.0, 1.0}},
};

}  // namespace

TEST_CASE("The textbook network's forward pass gives the hand-computed outputs", "[textbook]") {
  Model model(textbook_spec());
  load(model, kStart);
  const TextbookNet start = as_float(kStart);
  const std::vector<float> x = features_of(kBatch);
  std::vector<float> y(kBatch.size() * 2);
  model.predict(x, y);
  for (std::size_t r = 0; r < kBatch.size(); ++r) {
    const Forward f = forward(start, kBatch[r]);
    for (int k = 0; k < 2; ++k) {
      CAPTURE(r, k);
      CHECK_THAT(y[r * 2 + k], Catch::Matchers::WithinAbs(f.y[k], 1e-6));
    }
  }
}

TEST_CASE("One SGD step on one sample moves every weight by the textbook's delta rule",
          "[textbook]") {
  const float learning_rate = GENERATE(0.5f, 2.0f);
  CAPTURE(learning_rate);
  Model model(textbook_spec());
  load(model, kStart);
  const TextbookNet start = as_float(kStart);

  TextbookNet want = start;
  const double want_loss = textbook_step(want, kOneSample, learning_rate);

  shardprop::Trainer trainer(model, settings_for(1, learning_rate));
  const double loss = trainer.step(features_of(kOneSample), targets_of(kOneSample));
  CHECK_THAT(loss, Catch::Matchers::WithinRel(want_loss, 1e-6));
  check_equal(model, want, start);
}

TEST_CASE("One SGD step on a batch moves every weight by the mean of the per-sample gradients",
          "[textbook]") {
  Model model(textbook_spec());
  load(model, kStart);
  const TextbookNet start = as_float(kStart);
  const float learning_rate = 1.0f;

  TextbookNet want = start;
  const double want_loss = textbook_step(want, kBatch, learning_rate);
  shardprop::Trainer trainer(model, settings_for(static_cast<int>(kBatch.size()), learning_rate));

  SECTION("after one step") {
    const double loss = trainer.step(features_of(kBatch), targets_of(kBatch));
    CHECK_THAT(loss, Catch::Matchers::WithinRel(want_loss, 1e-6));
    check_equal(model, want, start);
  }
  SECTION("which a step with the summed gradient would not match") {
    // Guards the comparison itself: a step with the summed (not averaged) gradient is far off.
    TextbookNet summed = start;
    textbook_step(summed, kBatch, learning_rate * static_cast<double>(kBatch.size()));
    trainer.step(features_of(kBatch), targets_of(kBatch));
    const LibraryView got = view_of(model);
    CHECK(std::fabs(got.w(0, 0) - summed.w[0][0]) > 100 * kTolerance);
  }
  SECTION("after five steps") {
    for (int s = 0; s < 4; ++s) textbook_step(want, kBatch, learning_rate);
    for (int s = 0; s < 5; ++s) trainer.step(features_of(kBatch), targets_of(kBatch));
    // Five steps of float rounding, each ~1e-7: still well inside the tolerance.
    check_equal(model, want, start);
  }
}
