// The backward pass is the derivative of the forward pass: analytical gradients from
// detail::Network::backward against central finite differences of the mean loss, for every
// activation and loss, and the weight-decay term of the SGD update checked through a Trainer
// step. Leaves out sharding (sharding_test) and the textbook's closed forms (textbook_test).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "nn/loss.hpp"
#include "nn/network.hpp"
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
using shardprop::detail::ConstMatrix;

// Central differences on float parameters through the library's float forward pass, loss in
// double. Step 1e-2 balances the two error sources: truncation (h²/6)·|∂³L| ≈ 2e-5, and the
// float forward pass, whose outputs carry relative rounding ~1e-7 that the difference quotient
// amplifies by 1/(2h) = 50 to ~1e-5 (more when sums cancel). The float analytical gradient
// itself is accurate to ~1e-6 relative. So agreement within 2e-4 + 1e-3·|g| is what a correct
// backward pass gives (measured: every case here agrees within 3e-5 + 1e-4·|g|, and scaling the
// analytical gradient by 1.01 already fails most cases), while any real error —
// a missing factor f'(z), a transposed weight, a wrong loss derivative, a lost 1/B — is off by
// an O(1) fraction of the gradient.
constexpr float kStep = 1e-2f;
constexpr double kAbsoluteTolerance = 2e-4;
constexpr double kRelativeTolerance = 1e-3;

// Uniform in [lo, hi) from 24 random bits: the same numbers with every standard library.
float uniform(std::mt19937& rng, float lo, float hi) {
  return lo + (hi - lo) * static_cast<float>(rng() >> 8) * (1.0f / 16777216.0f);
}

int uniform_int(std::mt19937& rng, int lo, int hi) {  // in [lo, hi]
  return lo + static_cast<int>(rng() % static_cast<std::uint32_t>(hi - lo + 1));
}

// Mean over rows of the loss of outputs y: [rows, outputs], in double, written from the
// formulas (½Σ(y−t)², −log softmax(y)[t], Σ −t log σ(y) − (1−t) log(1−σ(y))).
double mean_loss(Loss loss, ConstMatrix y, const float* targets) {
  double total = 0.0;
  for (int r = 0; r < y.rows; ++r) {
    const float* z = y.row(r);
    switch (loss) {
      case Loss::mse:
        for (int j = 0; j < y.cols; ++j) {
          const double e = static_cast<double>(z[j]) - targets[r * y.cols + j];
          total += 0.5 * e * e;
        }
        break;
      case Loss::xent: {
        double max = z[0];
        for (int j = 1; j < y.cols; ++j) max = std::max(max, static_cast<double>(z[j]));
        double sum = 0.0;
        for (int j = 0; j < y.cols; ++j) sum += std::exp(z[j] - max);
        const int label = static_cast<int>(targets[r]);
        total += max + std::log(sum) - z[label];
        break;
      }
      case Loss::bce:
        for (int j = 0; j < y.cols; ++j) {
          const double s = static_cast<double>(z[j]);
          const double t = targets[r * y.cols + j];
          // log σ(s) = −log(1 + e^−s), log(1 − σ(s)) = −s − log(1 + e^−s), in stable form.
          const double log1p_exp_minus =
              s >= 0 ? std::log1p(std::exp(-s)) : -s + std::log1p(std::exp(s));
          total += t * log1p_exp_minus + (1.0 - t) * (s + log1p_exp_minus);
        }
        break;
    }
  }
  return total / y.rows;
}

// A network, a batch and its targets, all drawn from one seed.
struct Problem {
  Model model;
  int rows = 0;
  std::vector<float> features;
  std::vector<float> targets;
};

std::vector<float> random_targets(std::mt19937& rng, Loss loss, int rows, int outputs) {
  std::vector<float> targets;
  for (int r = 0; r < rows; ++r) {
    if (loss == Loss::xent) {
      targets.push_back(static_cast<float>(uniform_int(rng, 0, outputs - 1)));
    } else {
      for (int j = 0; j < outputs; ++j) {
        targets.push_back(loss == Loss::bce ? uniform(rng, 0.0f, 1.0f) : uniform(rng, -1.0f, 1.0f));
      }
    }
  }
  return targets;
}

// Initialises the weights and gives every bias a random value, so that bias gradients and
// relu patterns are not those of the all-zero-bias special case.
void randomize_parameters(Model& model, std::mt19937& rng) {
  model.initialize(rng());
  for (const TensorInfo& t : model.tensors()) {
    if (t.role == shardprop::TensorRole::weight) continue;
    for (std::size_t i = 0; i < t.size; ++i) {
      model.parameters()[t.offset + i] = uniform(rng, -0.5f, 0.5f);
    }
  }
}

Problem make_problem(ModelSpec spec, std::uint32_t seed, int rows) {
  std::mt19937 rng(seed);
  Problem p{Model(std::move(spec)), rows, {}, {}};
  randomize_parameters(p.model, rng);
  for (int i = 0; i < rows * p.model.inputs(); ++i) p.features.push_back(uniform(rng, -1.0f, 1.0f));
  p.targets = random_targets(rng, p.model.spec().loss, rows, p.model.outputs());
  return p;
}

// inputs → dense → act → dense → act → dense [→ act for mse], widths drawn from the seed.
ModelSpec random_spec(std::uint32_t seed, Activation activation, Loss loss) {
  std::mt19937 rng(seed ^ 0x5eedu);
  ModelSpec spec;
  spec.inputs = uniform_int(rng, 1, 5);
  spec.loss = loss;
  spec.layers.emplace_back(DenseSpec{uniform_int(rng, 1, 6)});
  spec.layers.emplace_back(ActivationSpec{activation, 0.2f});
  spec.layers.emplace_back(DenseSpec{uniform_int(rng, 1, 6)});
  spec.layers.emplace_back(ActivationSpec{activation, 0.2f});
  spec.layers.emplace_back(DenseSpec{uniform_int(rng, loss == Loss::xent ? 2 : 1, 4)});
  // Losses on logits take the raw output; mse also gets an output activation (as the textbook's
  // sigmoid outputs), so its derivative is checked at the top of the stack too.
  if (loss == Loss::mse) spec.layers.emplace_back(ActivationSpec{activation, 0.2f});
  return spec;
}

// The sign pattern of every relu's input after a forward pass: a finite difference whose two
// points see different patterns straddles a kink and measures nothing, so it is skipped.
std::vector<bool> relu_pattern(const shardprop::detail::Network& net, ConstMatrix x,
                               const shardprop::detail::ShardWorkspace& ws) {
  std::vector<bool> pattern;
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    const auto* a = std::get_if<shardprop::detail::ActivationLayer>(&net.layers[l]);
    if (a == nullptr || (a->kind != Activation::relu && a->kind != Activation::leaky_relu)) {
      continue;
    }
    // The relu's input, or (in place) its output: the same signs.
    const float* in = l == 0 ? x.data : ws.outputs[net.output_slot[l - 1]].data();
    for (int i = 0; i < x.rows * a->width; ++i) pattern.push_back(in[i] > 0.0f);
  }
  return pattern;
}

bool close_enough(double analytical, double numerical, double extra_tolerance = 0.0) {
  return std::fabs(analytical - numerical) <=
         kAbsoluteTolerance + kRelativeTolerance * std::fabs(numerical) + extra_tolerance;
}

// Checks every parameter's analytical gradient of the mean loss against central differences.
void check_gradients(const Problem& p) {
  const shardprop::detail::Network& net = shardprop::detail::network_of(p.model);
  const int inputs = p.model.inputs();
  const ConstMatrix x{p.features.data(), p.rows, inputs, inputs};
  shardprop::detail::ShardWorkspace ws = net.make_workspace(p.rows);
  std::vector<float> params(p.model.parameters().begin(), p.model.parameters().end());

  // NaN first: the pass must write (not accumulate into) every gradient.
  std::vector<float> grads(net.parameter_count, std::numeric_limits<float>::quiet_NaN());
  const double loss_sum = net.training_pass(params.data(), x, p.targets.data(),
                                            1.0f / static_cast<float>(p.rows), ws, grads.data());

  auto loss_at = [&](const std::vector<float>& at, std::vector<bool>* pattern) {
    const ConstMatrix y = net.forward(at.data(), x, ws);
    if (pattern != nullptr) *pattern = relu_pattern(net, x, ws);
    return mean_loss(p.model.spec().loss, y, p.targets.data());
  };
  std::vector<bool> base_pattern;
  const double base_loss = loss_at(params, &base_pattern);
  // The loss backward returns is the same quantity (summed over rows).
  CHECK_THAT(loss_sum / p.rows, Catch::Matchers::WithinRel(base_loss, 1e-5) ||
                                    Catch::Matchers::WithinAbs(base_loss, 1e-7));

  int checked = 0, skipped = 0, failures = 0;
  double largest_gradient = 0.0;
  for (const TensorInfo& tensor : p.model.tensors()) {
    for (std::size_t i = tensor.offset; i < tensor.offset + tensor.size; ++i) {
      std::vector<float> plus = params, minus = params;
      plus[i] = params[i] + kStep;
      minus[i] = params[i] - kStep;
      std::vector<bool> plus_pattern, minus_pattern;
      const double loss_plus = loss_at(plus, &plus_pattern);
      const double loss_minus = loss_at(minus, &minus_pattern);
      if (plus_pattern != base_pattern || minus_pattern != base_pattern) {
        ++skipped;
        continue;
      }
      // The float steps actually taken, exactly: w ± h is rounded.
      const double h = static_cast<double>(plus[i]) - static_cast<double>(minus[i]);
      const double numerical = (loss_plus - loss_minus) / h;
      const double analytical = grads[i];
      largest_gradient = std::max(largest_gradient, std::fabs(numerical));
      ++checked;
      if (!close_enough(analytical, numerical)) {
        const std::string& name = tensor.name;
        const std::size_t element = i - tensor.offset;
        CAPTURE(name, element, analytical, numerical);
        CHECK(close_enough(analytical, numerical));
        if (++failures > 5) FAIL("more than 5 gradients disagree");
      }
    }
  }
  CAPTURE(checked, skipped, largest_gradient);
  CHECK(failures == 0);
  // Relu kinks may cost a few parameters, never most of them.
  CHECK(skipped * 5 <= checked);
  // A test on vanishing gradients proves nothing: the problems are drawn so they are not.
  CHECK(largest_gradient > 50 * kAbsoluteTolerance);
}

}  // namespace

TEST_CASE("Backward gives the finite-difference gradient for every activation and loss",
          "[gradient]") {
  const auto activation = GENERATE(Activation::identity, Activation::sigmoid, Activation::tanh,
                                   Activation::relu, Activation::leaky_relu);
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  const auto seed = GENERATE(as<std::uint32_t>{}, 11, 23, 57);
  const int rows = static_cast<int>(seed % 5) + 1;  // 2, 4, 3 rows
  const ModelSpec spec = random_spec(seed, activation, loss);
  CAPTURE(to_string(activation), to_string(loss), seed, rows, spec.inputs, spec.layers.size());
  check_gradients(make_problem(spec, seed, rows));
}

TEST_CASE("Backward is right for stacked dense layers and an activation in front of the first one",
          "[gradient]") {
  // An activation before any weights (its backward must be skipped, nothing below learns),
  // two dense layers back to back (dx feeds dW directly), and relu then sigmoid outputs.
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  CAPTURE(to_string(loss));
  ModelSpec spec;
  spec.inputs = 3;
  spec.loss = loss;
  spec.layers = {ActivationSpec{Activation::tanh},
                 DenseSpec{5},
                 DenseSpec{4},
                 ActivationSpec{Activation::relu},
                 DenseSpec{3},
                 ActivationSpec{Activation::sigmoid},
                 DenseSpec{2}};
  check_gradients(make_problem(spec, 99, 6));
}

TEST_CASE("Activations run in place except above another activation, whose output they keep",
          "[gradient]") {
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  CAPTURE(to_string(loss));
  ModelSpec spec;
  spec.inputs = 3;
  spec.loss = loss;
  // Sigmoid overwrites the dense output; tanh above it must not overwrite the sigmoid's
  // output, which the sigmoid's backward pass reads (σ' = y(1 − y)).
  spec.layers = {
      DenseSpec{5}, ActivationSpec{Activation::sigmoid}, ActivationSpec{Activation::tanh},
      DenseSpec{4}, ActivationSpec{Activation::relu},    DenseSpec{2}};
  const Problem problem = make_problem(spec, 31, 5);
  const shardprop::detail::Network& net = shardprop::detail::network_of(problem.model);
  CHECK(net.output_slot == std::vector<std::size_t>{0, 0, 2, 3, 3, 5});
  check_gradients(problem);
}

TEST_CASE("Backward gives the gradient of the batch mean on a batch that uses BLAS", "[gradient]") {
  // 40 rows × 24 × 16 is past the plain-loop threshold, so the products go through OpenBLAS.
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  CAPTURE(to_string(loss));
  ModelSpec spec;
  spec.inputs = 16;
  spec.loss = loss;
  spec.layers = {DenseSpec{24}, ActivationSpec{Activation::tanh}, DenseSpec{3}};
  check_gradients(make_problem(spec, 5, 40));
}

TEST_CASE(
    "A trainer step with weight decay moves weights by lr times the gradient of "
    "mean loss + λ/2·ΣW², and biases by lr times the loss gradient alone",
    "[gradient]") {
  const auto loss = GENERATE(Loss::mse, Loss::xent, Loss::bce);
  const auto weight_decay = GENERATE(0.0f, 0.3f);
  CAPTURE(to_string(loss), weight_decay);
  const ModelSpec spec = random_spec(31, Activation::tanh, loss);
  Problem p = make_problem(spec, 31, 5);

  const float learning_rate = 0.05f;
  shardprop::TrainerSettings settings;
  settings.threads = 1;
  settings.shards = 1;
  settings.batch_size = p.rows;
  settings.learning_rate = learning_rate;
  settings.weight_decay = weight_decay;
  settings.shuffle = false;

  // J(W) = mean loss + (λ/2)·Σ W² over decayed tensors, in double, at float parameters.
  const shardprop::detail::Network& net = shardprop::detail::network_of(p.model);
  const ConstMatrix x{p.features.data(), p.rows, p.model.inputs(), p.model.inputs()};
  shardprop::detail::ShardWorkspace ws = net.make_workspace(p.rows);
  auto objective = [&](const std::vector<float>& at) {
    double penalty = 0.0;
    for (const TensorInfo& t : p.model.tensors()) {
      if (t.role != shardprop::TensorRole::weight) continue;
      for (std::size_t i = t.offset; i < t.offset + t.size; ++i) {
        penalty += static_cast<double>(at[i]) * at[i];
      }
    }
    const ConstMatrix y = net.forward(at.data(), x, ws);
    return mean_loss(loss, y, p.targets.data()) + 0.5 * weight_decay * penalty;
  };

  const std::vector<float> before(p.model.parameters().begin(), p.model.parameters().end());
  shardprop::Trainer trainer(p.model, settings);
  trainer.step(p.features, p.targets);
  const std::vector<float> after(p.model.parameters().begin(), p.model.parameters().end());

  int failures = 0;
  double largest_decay_term = 0.0;
  for (const TensorInfo& tensor : p.model.tensors()) {
    for (std::size_t i = tensor.offset; i < tensor.offset + tensor.size; ++i) {
      std::vector<float> plus = before, minus = before;
      plus[i] = before[i] + kStep;
      minus[i] = before[i] - kStep;
      const double h = static_cast<double>(plus[i]) - static_cast<double>(minus[i]);
      const double numerical = (objective(plus) - objective(minus)) / h;
      // The step stores W − η·g in float: rounding of W' is ½ulp(W'), i.e. up to 6e-8·|W'|,
      // which (W − W')/η magnifies by 1/η.
      const double implied = (static_cast<double>(before[i]) - after[i]) / learning_rate;
      const double rounding = 2.0 * 6e-8 * std::fabs(after[i]) / learning_rate;
      if (tensor.role == shardprop::TensorRole::weight) {
        largest_decay_term =
            std::max(largest_decay_term, std::fabs(static_cast<double>(weight_decay) * before[i]));
      }
      if (!close_enough(implied, numerical, rounding)) {
        const std::string& name = tensor.name;
        const std::size_t element = i - tensor.offset;
        CAPTURE(name, element, implied, numerical, before[i], after[i]);
        CHECK(close_enough(implied, numerical, rounding));
        if (++failures > 5) FAIL("more than 5 parameters moved wrongly");
      }
    }
  }
  CHECK(failures == 0);
  // With decay on, the decay term must matter at this tolerance, or the test would not see it.
  if (weight_decay > 0.0f) CHECK(largest_decay_term > 50 * kAbsoluteTolerance);
}

TEST_CASE("The losses and their deltas are finite and exact at saturated outputs", "[gradient]") {
  // Logits of ±100 overflow exp in float (e^88 is the limit): only the stable forms
  // (log-sum-exp, log1p(exp(−|z|))) give these values. scale = 0.5 as for a 2-row batch.
  using shardprop::detail::loss_forward_backward;
  using shardprop::detail::Matrix;
  const float scale = 0.5f;
  std::vector<float> delta(3, std::numeric_limits<float>::quiet_NaN());

  SECTION("xent: −log softmax(z)[t] and delta = scale·(softmax(z) − onehot(t))") {
    const float z[] = {-100.0f, 100.0f, 0.0f};
    const float label[] = {0.0f};
    const double loss = loss_forward_backward(Loss::xent, ConstMatrix{z, 1, 3, 3}, label, scale,
                                              Matrix{delta.data(), 1, 3, 3});
    // log(e^−100 + e^100 + 1) + 100 = 200 + log(1 + e^−100 + e^−200) = 200 to double precision.
    CHECK_THAT(loss, Catch::Matchers::WithinRel(200.0, 1e-12));
    CHECK_THAT(delta[0], Catch::Matchers::WithinAbs(-0.5, 1e-7));
    CHECK_THAT(delta[1], Catch::Matchers::WithinAbs(0.5, 1e-7));
    CHECK_THAT(delta[2], Catch::Matchers::WithinAbs(0.0, 1e-30));  // scale·e^−100
  }
  SECTION("bce: a confidently wrong logit costs |z|, a confidently right one ~e^−|z|") {
    const float z[] = {100.0f, -100.0f, -100.0f};
    const float t[] = {0.0f, 1.0f, 0.0f};
    const double loss = loss_forward_backward(Loss::bce, ConstMatrix{z, 1, 3, 3}, t, scale,
                                              Matrix{delta.data(), 1, 3, 3});
    CHECK_THAT(loss, Catch::Matchers::WithinRel(200.0, 1e-12));
    CHECK_THAT(delta[0], Catch::Matchers::WithinAbs(0.5, 1e-7));   // scale·(σ(100) − 0)
    CHECK_THAT(delta[1], Catch::Matchers::WithinAbs(-0.5, 1e-7));  // scale·(σ(−100) − 1)
    CHECK_THAT(delta[2], Catch::Matchers::WithinAbs(0.0, 1e-30));  // scale·(σ(−100) − 0)
  }
  SECTION("mse: ½Σ(z − t)² and delta = scale·(z − t)") {
    const float z[] = {3.0f, -2.0f, 0.5f};
    const float t[] = {1.0f, 2.0f, 0.5f};
    const double loss = loss_forward_backward(Loss::mse, ConstMatrix{z, 1, 3, 3}, t, scale,
                                              Matrix{delta.data(), 1, 3, 3});
    CHECK(loss == 10.0);  // ½(4 + 16 + 0), exact in float and double
    CHECK(delta == std::vector<float>{1.0f, -2.0f, 0.0f});
  }
}

TEST_CASE("The softmax loss agrees with exp and log in double on wide rows, many rows and gaps",
          "[gradient]") {
  // The loss computes its exponentials blockwise with its own exp: check it against std::exp
  // on rows narrower and wider than the kept 64 exponentials, more rows than one block holds,
  // and logit gaps past exp's underflow (−708).
  using shardprop::detail::loss_forward_backward;
  using shardprop::detail::Matrix;
  const int outputs = GENERATE(2, 10, 100);
  const int rows = 300;
  CAPTURE(outputs);
  std::mt19937_64 engine(7);
  std::uniform_real_distribution<float> logit(-30.0f, 30.0f);
  std::vector<float> z(static_cast<std::size_t>(rows) * outputs);
  std::vector<float> labels(rows);
  for (float& v : z) v = logit(engine);
  for (int r = 0; r < rows; ++r) labels[r] = static_cast<float>(r % outputs);
  z[1] = 800.0f;  // row 0: every other output lies > 708 below the maximum
  const float scale = 1.0f / rows;
  std::vector<float> delta(z.size());
  shardprop::detail::MetricSums metrics;
  const double loss = loss_forward_backward(
      Loss::xent, ConstMatrix{z.data(), rows, outputs, outputs}, labels.data(), scale,
      Matrix{delta.data(), rows, outputs, outputs}, &metrics);
  double expected = 0.0;
  int wrong_deltas = 0;
  for (int r = 0; r < rows; ++r) {
    const float* row = &z[static_cast<std::size_t>(r) * outputs];
    const float max = *std::max_element(row, row + outputs);
    double sum = 0.0;
    for (int j = 0; j < outputs; ++j) sum += std::exp(static_cast<double>(row[j] - max));
    const int label = static_cast<int>(labels[r]);
    expected += std::log(sum) - static_cast<double>(row[label] - max);
    for (int j = 0; j < outputs; ++j) {
      const double p = std::exp(static_cast<double>(row[j] - max)) / sum;
      const double d = scale * (p - (j == label ? 1.0 : 0.0));
      if (std::fabs(delta[static_cast<std::size_t>(r) * outputs + j] - d) > 1e-7 * scale) {
        ++wrong_deltas;
      }
    }
  }
  CHECK_THAT(loss, Catch::Matchers::WithinRel(expected, 1e-13));
  CHECK(wrong_deltas == 0);
  // The training pass's metrics are metric_sums' bits.
  const shardprop::detail::MetricSums direct = shardprop::detail::metric_sums(
      Loss::xent, ConstMatrix{z.data(), rows, outputs, outputs}, labels.data());
  CHECK(metrics.loss == direct.loss);
  CHECK(metrics.squared_error == direct.squared_error);
  CHECK(metrics.correct == direct.correct);

  SECTION("a NaN logit makes the loss NaN") {
    z[static_cast<std::size_t>(5) * outputs + 1] = std::numeric_limits<float>::quiet_NaN();
    const double nan_loss =
        loss_forward_backward(Loss::xent, ConstMatrix{z.data(), rows, outputs, outputs},
                              labels.data(), scale, Matrix{delta.data(), rows, outputs, outputs});
    CHECK(std::isnan(nan_loss));
  }
}

TEST_CASE("Each row's metrics from a block of rows are the row's metrics alone", "[gradient]") {
  // Inference sums each row's metrics exactly, so a row's must not depend on its neighbours:
  // row_metric_sums over many rows (several exponential blocks, rows wider than the 64 kept
  // exponentials) gives every row the bits metric_sums gives it alone.
  const Loss loss = GENERATE(Loss::xent, Loss::mse, Loss::bce);
  const int outputs = GENERATE(1, 10, 100);
  const int rows = GENERATE(1, 7, 300);
  CAPTURE(loss, outputs, rows);
  const int width = shardprop::detail::target_width(loss, outputs);
  std::mt19937_64 engine(11);
  std::uniform_real_distribution<float> logit(-20.0f, 20.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> z(static_cast<std::size_t>(rows) * outputs);
  std::vector<float> targets(static_cast<std::size_t>(rows) * width);
  for (float& v : z) v = logit(engine);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    targets[i] = loss == Loss::xent ? static_cast<float>(i % static_cast<std::size_t>(outputs))
                                    : unit(engine);
  }
  std::vector<shardprop::detail::MetricSums> each(static_cast<std::size_t>(rows) + 1);
  each.back().loss = 42.0;  // past y's rows: left alone
  shardprop::detail::row_metric_sums(loss, ConstMatrix{z.data(), rows, outputs, outputs},
                                     targets.data(), each);
  int differing = 0;
  for (int r = 0; r < rows; ++r) {
    const auto& got = each[static_cast<std::size_t>(r)];
    const auto alone = shardprop::detail::metric_sums(
        loss, ConstMatrix{z.data() + static_cast<std::size_t>(r) * outputs, 1, outputs, outputs},
        targets.data() + static_cast<std::size_t>(r) * width);
    differing += got.loss != alone.loss || got.correct != alone.correct ||
                 got.predictions != alone.predictions || got.squared_error != alone.squared_error ||
                 got.outputs != alone.outputs;
  }
  CHECK(differing == 0);
  CHECK(each.back().loss == 42.0);
}
