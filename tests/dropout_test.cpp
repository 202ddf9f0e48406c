// Inverted dropout: the identity in inference; in training a fraction `rate` of values zeroed
// and the rest scaled by 1/(1 − rate), with masks a pure function of (seed, step, minibatch row,
// layer, feature) — so the backward pass is the gradient of a fixed function, and sharded or
// multithreaded steps draw the masks of the unsharded one. Leaves out checkpoints of models with
// dropout (checkpoint_state_test).
#include <catch2/catch.hpp>

#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "nn/network.hpp"
#include "parameter_check.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::Activation;
using shardprop::ActivationSpec;
using shardprop::BatchNormSpec;
using shardprop::DenseSpec;
using shardprop::DropoutSpec;
using shardprop::LayerSpec;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::TensorInfo;
using shardprop::TensorRole;
using shardprop::Trainer;
using shardprop::TrainerSettings;
using shardprop::detail::ConstMatrix;
using shardprop::detail::DropoutKey;
using shardprop::detail::Network;
using shardprop::detail::ShardWorkspace;
using shardprop::test::check_trained;
using shardprop::test::copy_of;
using shardprop::test::moved_elements;
using shardprop::test::same_bits;
using shardprop::test::thrown_message;
using shardprop::test::trained_elements;
using shardprop::test::uniform_pm1;

std::vector<float> uniform_values(std::size_t count, float scale, std::uint64_t seed) {
  std::mt19937_64 bits(seed);
  std::vector<float> values(count);
  for (float& v : values) v = scale * uniform_pm1(bits);
  return values;
}

// Initialised weights; biases, γ and β moved off 0 and 1; for batch norm, running statistics
// that are not the initial 0 and 1 either, so inference really uses them.
Model make_model(const ModelSpec& spec, std::uint64_t seed) {
  Model model(spec);
  model.initialize(seed);
  std::mt19937_64 bits(seed);
  for (const TensorInfo& t : model.tensors()) {
    if (t.role == TensorRole::weight || t.role == TensorRole::batch_counter) continue;
    for (std::size_t i = 0; i < t.size; ++i) {
      model.parameters()[t.offset + i] += 0.4f * std::fabs(uniform_pm1(bits));
    }
  }
  return model;
}

std::vector<float> class_targets(int rows, int classes, std::uint64_t seed) {
  std::mt19937_64 bits(seed);
  std::vector<float> targets;
  for (int r = 0; r < rows; ++r) {
    targets.push_back(static_cast<float>(bits() % static_cast<unsigned>(classes)));
  }
  return targets;
}

// The stack with every dropout layer removed: the same tensors in the same order (dropout has
// none), under names whose layer indices have shifted.
ModelSpec without_dropout(ModelSpec spec) {
  std::erase_if(spec.layers,
                [](const LayerSpec& l) { return std::holds_alternative<DropoutSpec>(l); });
  return spec;
}

// Copies parameters and counters position by position, after checking the layouts agree.
void copy_by_layout(const Model& from, Model& to) {
  REQUIRE(from.tensors().size() == to.tensors().size());
  for (std::size_t k = 0; k < from.tensors().size(); ++k) {
    REQUIRE(from.tensors()[k].shape == to.tensors()[k].shape);
    REQUIRE(from.tensors()[k].offset == to.tensors()[k].offset);
  }
  REQUIRE(from.parameters().size() == to.parameters().size());
  std::copy(from.parameters().begin(), from.parameters().end(), to.parameters().begin());
  std::copy(from.counters().begin(), from.counters().end(), to.counters().begin());
}

// A training pass on one shard; the workspace keeps each layer's output and mask.
struct Pass {
  ShardWorkspace ws;
  std::vector<float> grads;
  double loss = 0.0;
};

Pass training_pass(const Model& model, const std::vector<float>& params,
                   const std::vector<float>& features, const std::vector<float>& targets,
                   DropoutKey key) {
  const Network& net = shardprop::detail::network_of(model);
  const int inputs = model.inputs();
  const int rows = static_cast<int>(features.size()) / inputs;
  Pass pass{net.make_workspace(rows), std::vector<float>(net.parameter_count, 0.0f), 0.0};
  pass.loss =
      net.training_pass(params.data(), {features.data(), rows, inputs, inputs}, targets.data(),
                        1.0f / static_cast<float>(rows), pass.ws, pass.grads.data(), key);
  return pass;
}

std::vector<float> parameters_of(const Model& model) { return copy_of(model.parameters()); }

// The first `rows` rows of layer l's mask.
std::vector<float> mask_rows(const Pass& pass, std::size_t l, int first, int rows, int width) {
  const float* begin = pass.ws.masks[l].data() + static_cast<std::ptrdiff_t>(first) * width;
  return {begin, begin + static_cast<std::ptrdiff_t>(rows) * width};
}

double fraction_different(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  std::size_t different = 0;
  for (std::size_t i = 0; i < a.size(); ++i) different += a[i] != b[i];
  return static_cast<double>(different) / static_cast<double>(a.size());
}

TrainerSettings settings_for(int shards, int threads, int batch_size) {
  TrainerSettings s;
  s.threads = threads;
  s.shards = shards;
  s.batch_size = batch_size;
  s.learning_rate = 0.1f;
  s.weight_decay = 0.01f;
  s.momentum = 0.9f;
  s.seed = 19;
  return s;
}

}  // namespace

TEST_CASE("Inference ignores dropout: predict gives the outputs of the model without it",
          "[dropout]") {
  const bool batch_norm = GENERATE(false, true);
  const float rate = GENERATE(0.2f, 0.9f);
  // Dropout below an activation: the activation, which otherwise overwrites its input in
  // place, must read the output of the layer under the dropout (which writes nothing here).
  const bool dropout_first = GENERATE(false, true);
  CAPTURE(batch_norm, rate, dropout_first);
  const int hidden[] = {16, 8};
  ModelSpec spec = ModelSpec::mlp(6, hidden, 3, Activation::relu, Loss::xent, batch_norm, rate);
  if (dropout_first) {
    for (std::size_t k = 0; k + 1 < spec.layers.size(); ++k) {
      if (std::holds_alternative<ActivationSpec>(spec.layers[k]) &&
          std::holds_alternative<DropoutSpec>(spec.layers[k + 1])) {
        std::swap(spec.layers[k], spec.layers[k + 1]);
      }
    }
    REQUIRE(std::holds_alternative<ActivationSpec>(spec.layers[spec.layers.size() - 2]));
  }
  const Model with = make_model(spec, 3);
  Model without(without_dropout(spec));
  REQUIRE(without.spec().layers.size() == spec.layers.size() - 2);
  copy_by_layout(with, without);
  CHECK(with.tensors().back().name != without.tensors().back().name);  // the shift is real

  const int rows = 37;
  const std::vector<float> features = uniform_values(rows * 6, 2.0f, 4);
  std::vector<float> with_out(rows * 3, std::numeric_limits<float>::quiet_NaN());
  std::vector<float> without_out(rows * 3, 0.0f);
  with.predict(features, with_out);
  without.predict(features, without_out);
  CHECK(same_bits(with_out, without_out));
}

TEST_CASE(
    "In training a dropout layer zeroes a fraction `rate` of values and scales the survivors by "
    "exactly 1/(1 − rate)",
    "[dropout]") {
  const float rate = GENERATE(0.1f, 0.5f, 0.8f);
  CAPTURE(rate);
  const int rows = 2048, width = 64;
  ModelSpec spec;
  spec.inputs = 8;
  spec.loss = Loss::mse;
  spec.layers = {DenseSpec{width}, DropoutSpec{rate}, DenseSpec{2}};
  const Model model = make_model(spec, 5);
  const Pass pass = training_pass(model, parameters_of(model), uniform_values(rows * 8, 1.0f, 6),
                                  uniform_values(rows * 2, 1.0f, 7), {8, 3, 0});
  const float* in = pass.ws.outputs[0].data();
  const float* out = pass.ws.outputs[1].data();
  const float keep_scale = 1.0f / (1.0f - rate);

  std::vector<int> zeros_per_feature(width, 0);
  int zeros = 0, wrong_scale = 0, zero_inputs = 0;
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < width; ++j) {
      const std::size_t i = static_cast<std::size_t>(r) * width + j;
      zero_inputs += in[i] == 0.0f;
      if (out[i] == 0.0f) {
        ++zeros;
        ++zeros_per_feature[j];
      } else if (out[i] != in[i] * keep_scale) {
        ++wrong_scale;
      }
    }
  }
  REQUIRE(zero_inputs == 0);  // every zero of the output is the mask's
  CHECK(wrong_scale == 0);
  // The number of zeros is Binomial(n, rate): within 4 standard errors of rate·n.
  const double n = static_cast<double>(rows) * width;
  const double standard_error = std::sqrt(rate * (1.0 - rate) / n);
  CHECK_THAT(zeros / n, Catch::Matchers::WithinAbs(rate, 4 * standard_error));
  // Every feature drops at the rate too (a mask keyed by row alone would drop whole rows; one
  // keyed by feature alone, whole columns): within 5 standard errors of `rows` draws.
  const double feature_error = std::sqrt(rate * (1.0 - rate) / rows);
  for (int j = 0; j < width; ++j) {
    CAPTURE(j);
    CHECK_THAT(zeros_per_feature[j] / static_cast<double>(rows),
               Catch::Matchers::WithinAbs(rate, 5 * feature_error));
  }
}

TEST_CASE("Backward with dropout gives the finite-difference gradient for a fixed mask",
          "[dropout][gradient]") {
  // With the key fixed the mask is fixed, so the training loss is a smooth function of the
  // parameters. Step and tolerances as in gradient_test.cpp (see its reasoning): h = 1e-2,
  // agreement within 2e-4 + 1e-3·|g|; a missing mask or scale in backward is off by O(1).
  constexpr float kStep = 1e-2f;
  constexpr double kAbsolute = 2e-4, kRelative = 1e-3;
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(batch_norm);
  ModelSpec spec;
  spec.inputs = 4;
  spec.loss = Loss::xent;
  spec.layers = {DenseSpec{6}, ActivationSpec{Activation::tanh}, DropoutSpec{0.5f},
                 DenseSpec{5}, ActivationSpec{Activation::tanh}, DropoutSpec{0.3f},
                 DenseSpec{3}};
  if (batch_norm) spec.layers.insert(spec.layers.begin() + 4, LayerSpec{BatchNormSpec{}});
  const Model model = make_model(spec, 9);
  const int rows = 6;
  const std::vector<float> features = uniform_values(rows * 4, 1.5f, 10);
  const std::vector<float> targets = class_targets(rows, 3, 11);
  const DropoutKey key{21, 4, 0};
  const std::vector<float> params = parameters_of(model);

  const Pass base = training_pass(model, params, features, targets, key);
  // The masks really drop values (in both layers), so the check covers them.
  const Network& net = shardprop::detail::network_of(model);
  for (std::size_t l = 0; l < net.layers.size(); ++l) {
    if (!std::holds_alternative<shardprop::detail::Dropout>(net.layers[l])) continue;
    CAPTURE(l);
    const shardprop::detail::AlignedFloats& mask = base.ws.masks[l];
    const int width = net.widths[l];
    const auto dropped = std::count(mask.begin(), mask.begin() + rows * width, 0.0f);
    CHECK(dropped > 0);
    CHECK(dropped < rows * width);
  }
  // Another key draws other masks, and so another gradient.
  const Pass other = training_pass(model, params, features, targets, {21, 5, 0});
  CHECK_FALSE(same_bits(base.grads, other.grads));

  auto loss_at = [&](const std::vector<float>& at) {
    return training_pass(model, at, features, targets, key).loss / rows;
  };
  int checked = 0, failures = 0;
  double largest = 0.0;
  for (const TensorInfo& t : model.tensors()) {
    if (!t.trained()) continue;
    for (std::size_t i = t.offset; i < t.offset + t.size; ++i) {
      std::vector<float> plus = params, minus = params;
      plus[i] += kStep;
      minus[i] -= kStep;
      const double h = static_cast<double>(plus[i]) - minus[i];
      const double numerical = (loss_at(plus) - loss_at(minus)) / h;
      const double analytical = base.grads[i];
      largest = std::max(largest, std::fabs(numerical));
      ++checked;
      const bool close =
          std::fabs(analytical - numerical) <= kAbsolute + kRelative * std::fabs(numerical);
      if (!close) {
        const std::string& name = t.name;
        const std::size_t element = i - t.offset;
        CAPTURE(name, element, analytical, numerical);
        CHECK(close);
        if (++failures > 5) FAIL("more than 5 gradients disagree");
      }
    }
  }
  CAPTURE(checked);
  CHECK(failures == 0);
  CHECK(largest > 50 * kAbsolute);
}

TEST_CASE("Dropout masks are a function of the key, the minibatch row and the layer", "[dropout]") {
  const int rows = 40, width = 32;
  ModelSpec spec;
  spec.inputs = 4;
  spec.loss = Loss::mse;
  spec.layers = {DenseSpec{width}, DropoutSpec{0.5f}, DropoutSpec{0.5f}, DenseSpec{2}};
  const Model model = make_model(spec, 13);
  const std::vector<float> params = parameters_of(model);
  const std::vector<float> features = uniform_values(rows * 4, 1.0f, 14);
  const std::vector<float> targets = uniform_values(rows * 2, 1.0f, 15);
  const DropoutKey key{31, 7, 0};
  const Pass base = training_pass(model, params, features, targets, key);
  const std::vector<float> first = mask_rows(base, 1, 0, rows, width);
  const std::vector<float> second = mask_rows(base, 2, 0, rows, width);

  SECTION("equal keys give equal masks") {
    const Pass again = training_pass(model, params, features, targets, key);
    CHECK(mask_rows(again, 1, 0, rows, width) == first);
    CHECK(mask_rows(again, 2, 0, rows, width) == second);
    CHECK(same_bits(again.grads, base.grads));
  }
  SECTION("two dropout layers of the same width draw different masks") {
    // Independent masks at rate ½ disagree in half the places.
    CHECK_THAT(fraction_different(first, second), Catch::Matchers::WithinAbs(0.5, 0.1));
  }
  SECTION("the next step, or another seed, draws other masks") {
    const auto [what, other] = GENERATE(table<std::string, DropoutKey>({
        {"next step", {31, 8, 0}},
        {"another seed", {32, 7, 0}},
    }));
    CAPTURE(what);
    const Pass pass = training_pass(model, params, features, targets, other);
    CHECK_THAT(fraction_different(mask_rows(pass, 1, 0, rows, width), first),
               Catch::Matchers::WithinAbs(0.5, 0.1));
  }
  SECTION("a shard's rows get the masks of their minibatch rows") {
    // Rows 13..28 passed alone with first_row = 13: the masks of rows 13..28 of the whole pass.
    const int begin = 13, count = 16;
    const std::vector<float> shard_features(features.begin() + begin * 4,
                                            features.begin() + (begin + count) * 4);
    const std::vector<float> shard_targets(targets.begin() + begin * 2,
                                           targets.begin() + (begin + count) * 2);
    const Pass shard = training_pass(model, params, shard_features, shard_targets, {31, 7, begin});
    CHECK(mask_rows(shard, 1, 0, count, width) == mask_rows(base, 1, begin, count, width));
    CHECK(mask_rows(shard, 2, 0, count, width) == mask_rows(base, 2, begin, count, width));
    // From row 0 instead, the same rows would draw other masks.
    const Pass unkeyed = training_pass(model, params, shard_features, shard_targets, {31, 7, 0});
    CHECK(mask_rows(unkeyed, 1, 0, count, width) != mask_rows(base, 1, begin, count, width));
  }
}

TEST_CASE(
    "Steps with dropout give the unsharded weights with 3 shards and the same bits with 1, 2 "
    "and 4 threads",
    "[dropout][sharding][determinism]") {
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(batch_norm);
  const int rows = 23, steps = 4;
  const int hidden[] = {32, 16};
  const Model initial =
      make_model(ModelSpec::mlp(12, hidden, 4, Activation::tanh, Loss::xent, batch_norm, 0.3f), 17);
  std::vector<std::vector<float>> features, targets;
  for (int s = 0; s < steps; ++s) {
    features.push_back(uniform_values(rows * 12, 1.5f, 100 + s));
    targets.push_back(class_targets(rows, 4, 200 + s));
  }
  tbb::global_control allow(tbb::global_control::max_allowed_parallelism, 4);
  auto train = [&](int shards, int threads) {
    Model model = initial;
    Trainer trainer(model, settings_for(shards, threads, rows));
    REQUIRE(trainer.shard_count() == shards);
    for (int s = 0; s < steps; ++s) trainer.step(features[s], targets[s]);
    return model;
  };

  SECTION("3 shards against 1") {
    const Model unsharded = train(1, 1);
    const Model sharded = train(3, 2);
    // 1e-6 relative, as in optimizer_test's sharded runs, with a floor of 1e-5 of the tensor's
    // largest value: behind batch norm a first-layer gradient element can be a sum of terms of
    // both signs that nearly cancel, which a BLAS with another summation order for the shards'
    // shapes (OpenBLAS's Zen kernels) moves by a few 1e-6 of the scale. Wrong math moves it by far
    // more.
    check_trained(initial, sharded.parameters(), copy_of(unsharded.parameters()), 1e-6, 1e-5,
                  "weights");
    CHECK(moved_elements(initial, sharded.parameters(), initial) * 10 >=
          trained_elements(initial) * 9);
    // Dropout was at work: without it the weights are different.
    Model plain(without_dropout(initial.spec()));
    copy_by_layout(initial, plain);
    Trainer trainer(plain, settings_for(1, 1, rows));
    for (int s = 0; s < steps; ++s) trainer.step(features[s], targets[s]);
    float largest_difference = 0.0f;
    for (std::size_t i = 0; i < plain.parameters().size(); ++i) {
      largest_difference = std::max(largest_difference,
                                    std::fabs(plain.parameters()[i] - unsharded.parameters()[i]));
    }
    CHECK(largest_difference > 1e-2f);
  }
  SECTION("4 shards on 1, 2 and 4 threads") {
    const Model one = train(4, 1);
    const int threads = GENERATE(2, 4);
    CAPTURE(threads);
    const Model many = train(4, threads);
    CHECK(same_bits(many.parameters(), one.parameters()));
    CHECK(std::equal(many.counters().begin(), many.counters().end(), one.counters().begin()));
  }
}

TEST_CASE("Dropout with rate 0 trains and predicts bit for bit like no dropout layer",
          "[dropout]") {
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(batch_norm);
  const int rows = 16;
  const int hidden[] = {8, 8};
  const ModelSpec spec = ModelSpec::mlp(5, hidden, 3, Activation::relu, Loss::xent, batch_norm);
  ModelSpec with_zero = spec;
  // ModelSpec::mlp leaves rate-0 dropout out, so the layers go in by hand, after each relu.
  for (std::size_t k = with_zero.layers.size(); k-- > 0;) {
    const auto* a = std::get_if<ActivationSpec>(&with_zero.layers[k]);
    if (a != nullptr) with_zero.layers.insert(with_zero.layers.begin() + k + 1, DropoutSpec{0.0f});
  }
  REQUIRE(with_zero.layers.size() == spec.layers.size() + 2);
  Model plain = make_model(spec, 23);
  Model zero(with_zero);
  copy_by_layout(plain, zero);

  Trainer plain_trainer(plain, settings_for(2, 1, rows));
  Trainer zero_trainer(zero, settings_for(2, 1, rows));
  for (int s = 0; s < 3; ++s) {
    const std::vector<float> x = uniform_values(rows * 5, 1.0f, 300 + s);
    const std::vector<float> t = class_targets(rows, 3, 400 + s);
    CHECK(zero_trainer.step(x, t) == plain_trainer.step(x, t));
  }
  CHECK(same_bits(zero.parameters(), plain.parameters()));
  const std::vector<float> x = uniform_values(rows * 5, 1.0f, 500);
  std::vector<float> plain_out(rows * 3), zero_out(rows * 3);
  plain.predict(x, plain_out);
  zero.predict(x, zero_out);
  CHECK(same_bits(zero_out, plain_out));
}

TEST_CASE(
    "A dropout rate outside 0 <= rate < 1 is rejected by the Model constructor naming the layer",
    "[dropout]") {
  const float rate = GENERATE(1.0f, 1.5f, -0.1f, std::numeric_limits<float>::quiet_NaN(),
                              std::numeric_limits<float>::infinity());
  CAPTURE(rate);
  ModelSpec spec;
  spec.inputs = 3;
  spec.loss = Loss::mse;
  spec.layers = {DenseSpec{4}, ActivationSpec{Activation::relu}, DropoutSpec{rate}, DenseSpec{2}};
  const std::string message = thrown_message<shardprop::Error>([&] { Model model(spec); });
  CAPTURE(message);
  CHECK_THAT(message, Contains("layer 2"));
  CHECK_THAT(message, Contains("dropout"));
  CHECK_THAT(message, Contains("[0, 1)"));
}
