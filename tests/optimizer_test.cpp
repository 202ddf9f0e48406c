// The update rules against a naive reference: each Trainer::step must equal the minibatch
// gradient (Network::training_pass on one shard) run through torch.optim's SGD, momentum,
// Nesterov and Adam formulas in double, with gradient clipping and learning-rate schedules;
// sharded runs must match unsharded ones; bad settings and diverging runs are errors. Leaves out
// dropout (dropout_test) and saving the optimizer state (checkpoint_state_test).
#include <catch2/catch.hpp>

#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "nn/network.hpp"
#include "parameter_check.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "test_util.hpp"
#include "train/gradient_buffer.hpp"
#include "train/trainer_access.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::Activation;
using shardprop::LearningRateSchedule;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::Optimizer;
using shardprop::TensorInfo;
using shardprop::TensorRole;
using shardprop::Trainer;
using shardprop::TrainerSettings;
using shardprop::detail::TrainerAccess;
using shardprop::test::check_trained;
using shardprop::test::copy_of;
using shardprop::test::moved_elements;
using shardprop::test::same_bits;
using shardprop::test::thrown_message;
using shardprop::test::trained_elements;
using shardprop::test::uniform_pm1;

constexpr int kSteps = 5;
constexpr int kRows = 8;

// The trainer works in float, the reference in double from float gradients taken at its own
// (float-rounded) weights. After five steps the two differ by a few float roundings of each
// update and of each gradient, ~1e-6 relative at worst; 1e-5 leaves room for that while a wrong
// formula (a lost bias correction, decay on a bias, μ applied once too often, clipping after
// decay) is off by a percent or more. Elements that end near zero keep no relative precision,
// so below 1e-6 of the largest magnitude in their tensor the absolute difference is compared.
constexpr double kReferenceRelative = 1e-5;
constexpr double kReferenceFloor = 1e-6;
// Sharded against unsharded: only the order of float additions differs, so the weights agree
// within 1e-6 (as in sharding_test). The optimizer's buffers are (averages of) the gradients
// themselves, not weights moved by a small multiple of them, and under batch norm the gradient
// of the layers below comes out of a cancelling difference (dy − mean dy − x̂·mean(dy·x̂)) whose
// shard-order rounding is measured at up to 6e-6 relative: they get 2e-5.
constexpr double kShardedRelative = 1e-6;
constexpr double kShardedStateRelative = 2e-5;
constexpr double kShardedFloor = 1e-7;

struct Batch {
  std::vector<float> features, targets;
};

// 3 → 5 [→ batch norm] → tanh → 2, with weights from initialize() and every bias, γ and β moved
// by a random amount so no trained value starts at exactly 0 or 1.
Model make_model(Loss loss, bool batch_norm, std::uint64_t seed) {
  const int hidden[] = {5};
  Model model(ModelSpec::mlp(3, hidden, 2, Activation::tanh, loss, batch_norm));
  model.initialize(seed);
  std::mt19937_64 bits(seed);
  for (const TensorInfo& t : model.tensors()) {
    if (t.role != TensorRole::bias) continue;
    for (std::size_t i = 0; i < t.size; ++i) {
      model.parameters()[t.offset + i] += 0.4f * uniform_pm1(bits);
    }
  }
  return model;
}

// `count` minibatches of `rows` rows: features in [−1.5, 1.5), targets as the loss needs.
std::vector<Batch> make_batches(const Model& model, int count, int rows, std::uint64_t seed) {
  std::mt19937_64 bits(seed);
  std::vector<Batch> batches(static_cast<std::size_t>(count));
  for (Batch& b : batches) {
    for (int i = 0; i < rows * model.inputs(); ++i) b.features.push_back(1.5f * uniform_pm1(bits));
    if (model.spec().loss == Loss::xent) {
      for (int r = 0; r < rows; ++r) {
        b.targets.push_back(static_cast<float>(bits() % static_cast<unsigned>(model.outputs())));
      }
    } else {
      for (int i = 0; i < rows * model.outputs(); ++i) b.targets.push_back(uniform_pm1(bits));
    }
  }
  return batches;
}

TrainerSettings settings_for(Optimizer optimizer, float learning_rate, float momentum = 0.0f,
                             bool nesterov = false, float weight_decay = 0.0f) {
  TrainerSettings s;
  s.threads = 1;
  s.shards = 1;
  s.batch_size = kRows;
  s.seed = 7;
  s.optimizer = optimizer;
  s.learning_rate = learning_rate;
  s.momentum = momentum;
  s.nesterov = nesterov;
  s.weight_decay = weight_decay;
  return s;
}

TrainerSettings adam_with(float beta1, float beta2, float epsilon) {
  TrainerSettings s = settings_for(Optimizer::adam, 0.01f, 0.0f, false, 0.02f);
  s.adam_beta1 = beta1;
  s.adam_beta2 = beta2;
  s.adam_epsilon = epsilon;
  return s;
}

// torch.optim.SGD (dampening 0) and torch.optim.Adam written out in double, with
// torch.nn.utils.clip_grad_norm_ in front. Only trained tensors move; the gradient is the
// library's own single-shard training pass at this reference's weights.
class ReferenceOptimizer {
 public:
  ReferenceOptimizer(const Model& model, const TrainerSettings& settings)
      : model_(model),
        settings_(settings),
        weights_(model.parameters().begin(), model.parameters().end()),
        momentum_buffer_(weights_.size(), 0.0),
        exp_avg_(weights_.size(), 0.0),
        exp_avg_sq_(weights_.size(), 0.0) {}

  void step(const Batch& batch, double learning_rate) {
    const shardprop::detail::Network& net = shardprop::detail::network_of(model_);
    const int inputs = model_.inputs();
    const int rows = static_cast<int>(batch.features.size()) / inputs;
    const std::vector<float> params(weights_.begin(), weights_.end());
    std::vector<float> grads(net.parameter_count, 0.0f);
    shardprop::detail::ShardWorkspace ws = net.make_workspace(rows);
    net.training_pass(params.data(), {batch.features.data(), rows, inputs, inputs},
                      batch.targets.data(), 1.0f / static_cast<float>(rows), ws, grads.data(),
                      {settings_.seed, static_cast<std::uint64_t>(t_), 0});

    double squares = 0.0;
    for_each_trained([&](std::size_t i, bool) { squares += double{grads[i]} * grads[i]; });
    norm_ = std::sqrt(squares);
    const double limit = settings_.clip_grad_norm;
    const double clip = limit > 0.0 && norm_ > limit ? limit / (norm_ + 1e-6) : 1.0;
    ++t_;
    const double lambda = settings_.weight_decay, mu = settings_.momentum;
    const double beta1 = settings_.adam_beta1, beta2 = settings_.adam_beta2;
    const double bias_correction1 = 1.0 - std::pow(beta1, t_);
    const double bias_correction2 = 1.0 - std::pow(beta2, t_);
    for_each_trained([&](std::size_t i, bool decayed) {
      double& w = weights_[i];
      const double g = clip * grads[i] + (decayed ? lambda * w : 0.0);
      if (settings_.optimizer == Optimizer::adam) {
        double& m = exp_avg_[i];
        double& v = exp_avg_sq_[i];
        m = beta1 * m + (1.0 - beta1) * g;
        v = beta2 * v + (1.0 - beta2) * g * g;
        w -= learning_rate / bias_correction1 * m /
             (std::sqrt(v) / std::sqrt(bias_correction2) + settings_.adam_epsilon);
      } else if (mu > 0.0) {
        double& buf = momentum_buffer_[i];
        buf = t_ == 1 ? g : mu * buf + g;  // torch starts the buffer as a copy of g
        w -= learning_rate * (settings_.nesterov ? g + mu * buf : buf);
      } else {
        w -= learning_rate * g;
      }
    });
  }

  const std::vector<double>& weights() const { return weights_; }
  // The buffer torch.optim keeps under this state name.
  const std::vector<double>& state(const std::string& name) const {
    if (name == "momentum_buffer") return momentum_buffer_;
    if (name == "exp_avg") return exp_avg_;
    if (name == "exp_avg_sq") return exp_avg_sq_;
    FAIL("no optimizer state named " << name);
    return weights_;
  }
  double last_norm() const { return norm_; }

 private:
  // f(flat index, decayed) over the trained tensors; only dense weights are decayed.
  template <class F>
  void for_each_trained(F&& f) const {
    for (const TensorInfo& t : model_.tensors()) {
      if (!t.trained()) continue;
      for (std::size_t i = t.offset; i < t.offset + t.size; ++i) f(i, t.role == TensorRole::weight);
    }
  }

  Model model_;
  TrainerSettings settings_;
  std::vector<double> weights_, momentum_buffer_, exp_avg_, exp_avg_sq_;
  int t_ = 0;
  double norm_ = 0.0;
};

// A dataset of `rows` rows for the 3 → 5 → 2 mse model.
shardprop::Dataset tiny_dataset(int rows) {
  std::mt19937_64 bits(3);
  shardprop::Dataset data;
  data.rows = rows;
  data.feature_count = 3;
  data.target_width = 2;
  for (int i = 0; i < rows * 3; ++i) data.features.push_back(uniform_pm1(bits));
  for (int i = 0; i < rows * 2; ++i) data.targets.push_back(uniform_pm1(bits));
  return data;
}

}  // namespace

TEST_CASE("Five steps of each optimizer move every trained tensor as torch.optim's formulas do",
          "[optimizer]") {
  const auto [optimizer_name, settings] = GENERATE(table<std::string, TrainerSettings>({
      {"sgd", settings_for(Optimizer::sgd, 0.1f)},
      {"sgd with weight decay", settings_for(Optimizer::sgd, 0.1f, 0.0f, false, 0.05f)},
      {"momentum", settings_for(Optimizer::sgd, 0.05f, 0.9f, false, 0.05f)},
      {"nesterov", settings_for(Optimizer::sgd, 0.05f, 0.8f, true, 0.05f)},
      {"adam", settings_for(Optimizer::adam, 0.01f)},
      {"adam with weight decay", settings_for(Optimizer::adam, 0.01f, 0.0f, false, 0.05f)},
      {"adam with β = (0.8, 0.95), ε = 1e-3", adam_with(0.8f, 0.95f, 1e-3f)},
  }));
  const auto [model_name, loss, batch_norm] = GENERATE(table<std::string, Loss, bool>({
      {"3-5-2 tanh mse", Loss::mse, false},
      {"3-5-2 tanh xent", Loss::xent, false},
      {"3-5-bn-2 tanh mse", Loss::mse, true},
      {"3-5-bn-2 tanh xent", Loss::xent, true},
  }));
  CAPTURE(optimizer_name, model_name);
  const Model initial = make_model(loss, batch_norm, 11);
  const std::vector<Batch> batches = make_batches(initial, kSteps, kRows, 12);

  Model model = initial;
  Trainer trainer(model, settings);
  ReferenceOptimizer reference(initial, settings);
  for (const Batch& b : batches) {
    trainer.step(b.features, b.targets);
    reference.step(b, settings.learning_rate);
  }

  SECTION("the weights") {
    CHECK(trainer.steps_completed() == kSteps);
    check_trained(model, model.parameters(), reference.weights(), kReferenceRelative,
                  kReferenceFloor, "weights");
    CHECK(moved_elements(model, model.parameters(), initial) * 10 >= trained_elements(model) * 9);
  }
  SECTION("the optimizer state, under torch.optim's state names") {
    const std::vector<std::string> names = TrainerAccess::optimizer_state_names(trainer);
    if (settings.optimizer == Optimizer::adam) {
      CHECK(names == std::vector<std::string>{"exp_avg", "exp_avg_sq"});
    } else if (settings.momentum > 0.0f) {
      CHECK(names == std::vector<std::string>{"momentum_buffer"});
    } else {
      CHECK(names.empty());
      CHECK_THROWS_AS(TrainerAccess::optimizer_state(trainer, 0), shardprop::Error);
    }
    for (int slot = 0; slot < static_cast<int>(names.size()); ++slot) {
      CAPTURE(names[slot]);
      REQUIRE(TrainerAccess::optimizer_state(trainer, slot).size() >= model.parameters().size());
      check_trained(model, TrainerAccess::optimizer_state(trainer, slot),
                    reference.state(names[slot]), kReferenceRelative, kReferenceFloor, names[slot]);
    }
  }
}

TEST_CASE(
    "Gradient clipping scales the summed minibatch gradient to the limit before weight decay "
    "and reports the unclipped norm",
    "[optimizer]") {
  const auto [optimizer_name, base] = GENERATE(table<std::string, TrainerSettings>({
      {"sgd", settings_for(Optimizer::sgd, 0.1f, 0.0f, false, 0.05f)},
      {"momentum", settings_for(Optimizer::sgd, 0.05f, 0.9f, false, 0.05f)},
      {"adam", settings_for(Optimizer::adam, 0.01f, 0.0f, false, 0.05f)},
  }));
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(optimizer_name, batch_norm);
  const Model initial = make_model(Loss::xent, batch_norm, 21);
  const std::vector<Batch> batches = make_batches(initial, kSteps, kRows, 22);

  SECTION("a limit below the gradient norm") {
    // A tenth of the first step's norm: every step is clipped (checked below).
    ReferenceOptimizer probe(initial, base);
    probe.step(batches[0], base.learning_rate);
    TrainerSettings settings = base;
    settings.clip_grad_norm = static_cast<float>(0.1 * probe.last_norm());

    Model model = initial;
    Trainer trainer(model, settings);
    ReferenceOptimizer reference(initial, settings);
    CHECK(trainer.last_gradient_norm() == 0.0);
    for (const Batch& b : batches) {
      trainer.step(b.features, b.targets);
      reference.step(b, settings.learning_rate);
      CHECK(reference.last_norm() > 1.2 * settings.clip_grad_norm);
      CHECK_THAT(trainer.last_gradient_norm(),
                 Catch::Matchers::WithinRel(reference.last_norm(), kReferenceRelative));
    }
    check_trained(model, model.parameters(), reference.weights(), kReferenceRelative,
                  kReferenceFloor, "weights");
    for (int slot = 0;
         slot < static_cast<int>(TrainerAccess::optimizer_state_names(trainer).size()); ++slot) {
      const std::string name = TrainerAccess::optimizer_state_names(trainer)[slot];
      check_trained(model, TrainerAccess::optimizer_state(trainer, slot), reference.state(name),
                    kReferenceRelative, kReferenceFloor, name);
    }
  }
  SECTION("a limit above the gradient norm changes nothing, bit for bit") {
    Model unclipped_model = initial;
    Trainer unclipped(unclipped_model, base);
    TrainerSettings settings = base;
    settings.clip_grad_norm = 1e6f;
    Model model = initial;
    Trainer trainer(model, settings);
    for (const Batch& b : batches) {
      trainer.step(b.features, b.targets);
      unclipped.step(b.features, b.targets);
      CHECK(trainer.last_gradient_norm() == unclipped.last_gradient_norm());
    }
    CHECK(trainer.last_gradient_norm() > 0.0);
    CHECK(same_bits(model.parameters(), unclipped_model.parameters()));
    for (int slot = 0;
         slot < static_cast<int>(TrainerAccess::optimizer_state_names(trainer).size()); ++slot) {
      CHECK(same_bits(TrainerAccess::optimizer_state(trainer, slot),
                      TrainerAccess::optimizer_state(unclipped, slot)));
    }
  }
}

TEST_CASE(
    "Update segments cover every trained parameter once, within its tensor, and cut the bottom "
    "weight into an even number of pieces",
    "[optimizer]") {
  // The bottom layer's update is the step's tail (its gradient is the last the shards finish):
  // cut in two or more pieces, the threads share it.
  const auto [inputs, hidden] = GENERATE(table<int, std::vector<int>>({
      {64, {128, 128}},  // the small benchmark network: an 8,192-float bottom weight
      {784, {1024}},     // 802,816 floats
      {784, {300, 7}},   // 235,200
      {5, {3}},          // 15 floats: a single cache line stays whole
  }));
  const std::size_t max_floats = GENERATE(std::size_t{16} * 1024, std::size_t{1024});
  CAPTURE(inputs, hidden, max_floats);
  const Model model(ModelSpec::mlp(inputs, hidden, 10, Activation::relu, Loss::xent));
  const std::vector<shardprop::detail::ParameterSegment> segments =
      shardprop::detail::parameter_segments(model.tensors(), max_floats);

  std::vector<int> covered(model.parameters().size(), 0);
  for (const auto& s : segments) {
    REQUIRE(s.begin < s.end);
    CHECK(s.end - s.begin <= max_floats);
    const auto within = std::find_if(
        model.tensors().begin(), model.tensors().end(),
        [&](const TensorInfo& t) { return t.offset <= s.begin && s.end <= t.offset + t.size; });
    REQUIRE(within != model.tensors().end());
    CHECK(within->trained());
    CHECK(s.decayed == (within->role == TensorRole::weight));
    for (std::size_t i = s.begin; i < s.end; ++i) ++covered[i];
  }
  for (const TensorInfo& t : model.tensors()) {
    for (std::size_t i = t.offset; i < t.offset + t.size; ++i) {
      REQUIRE(covered[i] == (t.trained() ? 1 : 0));
    }
  }

  const TensorInfo& bottom = model.tensors().front();
  REQUIRE(bottom.role == TensorRole::weight);
  const auto pieces = std::count_if(segments.begin(), segments.end(), [&](const auto& s) {
    return s.begin < bottom.offset + bottom.size;
  });
  if (bottom.size <= 16) {
    CHECK(pieces == 1);
  } else {
    CHECK(pieces % 2 == 0);
    CHECK(static_cast<std::size_t>(pieces) <=
          2 * ((bottom.size + 2 * max_floats - 1) / (2 * max_floats)));
  }
}

TEST_CASE("learning_rate() follows the step and cosine schedules epoch by epoch", "[optimizer]") {
  const float eta = 0.2f, gamma = 0.5f;
  const int step_epochs = 3, cosine_epochs = 6;
  const auto schedule = GENERATE(LearningRateSchedule::constant, LearningRateSchedule::step,
                                 LearningRateSchedule::cosine);
  CAPTURE(to_string(schedule));
  auto expected = [&](int e) {
    switch (schedule) {
      case LearningRateSchedule::step:
        return double{eta} * std::pow(double{gamma}, e / step_epochs);
      case LearningRateSchedule::cosine:
        return double{eta} * (1.0 + std::cos(std::numbers::pi * e / cosine_epochs)) / 2.0;
      case LearningRateSchedule::constant:
        break;
    }
    return double{eta};
  };
  TrainerSettings settings = settings_for(Optimizer::sgd, eta);
  settings.batch_size = 4;
  settings.schedule = schedule;
  settings.schedule_step_epochs = step_epochs;
  settings.schedule_gamma = gamma;
  settings.cosine_epochs = cosine_epochs;
  const shardprop::Dataset data = tiny_dataset(6);  // two steps an epoch
  Model model = make_model(Loss::mse, false, 31);
  Trainer trainer(model, settings);
  Model other_model = model;
  Trainer resumed(other_model, settings);

  for (int e = 0; e <= cosine_epochs; ++e) {
    CAPTURE(e);
    REQUIRE(trainer.epochs_completed() == e);
    const double want = expected(e);
    const auto close = Catch::Matchers::WithinRel(want, 1e-12);
    const auto near_zero = Catch::Matchers::WithinAbs(want, 1e-15);
    CHECK_THAT(trainer.learning_rate(), close || near_zero);
    // The schedule is a function of the epoch alone: a trainer told where it is agrees.
    TrainerAccess::set_progress(resumed, e, 1000);
    CHECK(resumed.learning_rate() == trainer.learning_rate());
    trainer.train_epoch(data);
  }
  CHECK(trainer.steps_completed() == 2 * (cosine_epochs + 1));
}

TEST_CASE("A step at a scheduled learning rate equals a constant-rate step at that rate",
          "[optimizer]") {
  const auto [schedule_name, schedule, epoch] =
      GENERATE(table<std::string, LearningRateSchedule, int>({
          {"step, third period", LearningRateSchedule::step, 5},
          {"cosine, mid-run", LearningRateSchedule::cosine, 2},
          {"cosine, last epoch", LearningRateSchedule::cosine, 4},
      }));
  const auto optimizer = GENERATE(Optimizer::sgd, Optimizer::adam);
  CAPTURE(schedule_name, epoch, to_string(optimizer));
  const Model initial = make_model(Loss::mse, true, 41);
  const std::vector<Batch> batches = make_batches(initial, 3, kRows, 42);

  TrainerSettings scheduled_settings = settings_for(optimizer, 0.05f, 0.0f, false, 0.01f);
  if (optimizer == Optimizer::sgd) scheduled_settings.momentum = 0.9f;
  scheduled_settings.schedule = schedule;
  scheduled_settings.schedule_step_epochs = 2;
  scheduled_settings.schedule_gamma = 0.3f;
  scheduled_settings.cosine_epochs = 5;
  Model scheduled_model = initial;
  Trainer scheduled(scheduled_model, scheduled_settings);
  TrainerAccess::set_progress(scheduled, epoch, 9);  // Adam's t continues from 9 in both

  TrainerSettings constant_settings = scheduled_settings;
  constant_settings.schedule = LearningRateSchedule::constant;
  constant_settings.learning_rate = static_cast<float>(scheduled.learning_rate());
  REQUIRE(constant_settings.learning_rate < 0.9f * scheduled_settings.learning_rate);
  Model constant_model = initial;
  Trainer constant(constant_model, constant_settings);
  TrainerAccess::set_progress(constant, epoch, 9);

  for (const Batch& b : batches) {
    scheduled.step(b.features, b.targets);
    constant.step(b.features, b.targets);
  }
  CHECK(same_bits(scheduled_model.parameters(), constant_model.parameters()));
  CHECK_FALSE(same_bits(scheduled_model.parameters(), initial.parameters()));
}

TEST_CASE(
    "Adam and momentum runs give the unsharded weights with 3 or 4 shards, bit for bit the same "
    "with 1 or 2 threads",
    "[optimizer][sharding][determinism]") {
  const auto [optimizer_name, base] = GENERATE(table<std::string, TrainerSettings>({
      {"momentum", settings_for(Optimizer::sgd, 0.05f, 0.9f, false, 0.01f)},
      {"nesterov", settings_for(Optimizer::sgd, 0.05f, 0.9f, true, 0.01f)},
      {"adam", settings_for(Optimizer::adam, 0.01f, 0.0f, false, 0.01f)},
  }));
  const bool batch_norm = GENERATE(false, true);
  const int shards = GENERATE(3, 4);
  CAPTURE(optimizer_name, batch_norm, shards);
  const int rows = 23;  // not a multiple of 3 or 4
  const Model initial = make_model(Loss::xent, batch_norm, 51);
  const std::vector<Batch> batches = make_batches(initial, kSteps, rows, 52);
  tbb::global_control allow(tbb::global_control::max_allowed_parallelism, 2);

  struct Run {
    Model model;
    std::vector<std::vector<float>> state;
  };
  auto train = [&](int shard_count, int threads) {
    TrainerSettings settings = base;
    settings.batch_size = rows;
    settings.shards = shard_count;
    settings.threads = threads;
    Run run{initial, {}};
    Trainer trainer(run.model, settings);
    REQUIRE(trainer.shard_count() == shard_count);
    for (const Batch& b : batches) trainer.step(b.features, b.targets);
    for (int slot = 0;
         slot < static_cast<int>(TrainerAccess::optimizer_state_names(trainer).size()); ++slot) {
      run.state.push_back(copy_of(TrainerAccess::optimizer_state(trainer, slot)));
    }
    return run;
  };
  const Run unsharded = train(1, 1);
  const Run one_thread = train(shards, 1);
  const Run two_threads = train(shards, 2);

  check_trained(initial, one_thread.model.parameters(), copy_of(unsharded.model.parameters()),
                kShardedRelative, kShardedFloor, "weights");
  REQUIRE(one_thread.state.size() == unsharded.state.size());
  for (std::size_t slot = 0; slot < unsharded.state.size(); ++slot) {
    check_trained(initial, one_thread.state[slot], unsharded.state[slot], kShardedStateRelative,
                  kShardedFloor, "state slot " + std::to_string(slot));
  }
  CHECK(moved_elements(initial, one_thread.model.parameters(), initial) * 10 >=
        trained_elements(initial) * 9);

  CHECK(same_bits(two_threads.model.parameters(), one_thread.model.parameters()));
  REQUIRE(two_threads.state.size() == one_thread.state.size());
  for (std::size_t slot = 0; slot < one_thread.state.size(); ++slot) {
    CHECK(same_bits(two_threads.state[slot], one_thread.state[slot]));
  }
}

TEST_CASE("Invalid optimizer settings are rejected with a message naming the setting",
          "[optimizer]") {
  using Change = void (*)(TrainerSettings&);
  const auto [description, change, fragment] = GENERATE(table<std::string, Change, std::string>({
      {"momentum of 1", [](TrainerSettings& s) { s.momentum = 1.0f; }, "momentum"},
      {"momentum above 1", [](TrainerSettings& s) { s.momentum = 1.5f; }, "momentum"},
      {"negative momentum", [](TrainerSettings& s) { s.momentum = -0.1f; }, "momentum"},
      {"nesterov without momentum", [](TrainerSettings& s) { s.nesterov = true; }, "nesterov"},
      {"nesterov with adam",
       [](TrainerSettings& s) {
         s.optimizer = Optimizer::adam;
         s.nesterov = true;
       },
       "nesterov"},
      {"adam with momentum",
       [](TrainerSettings& s) {
         s.optimizer = Optimizer::adam;
         s.momentum = 0.9f;
       },
       "momentum"},
      {"adam beta1 of 1",
       [](TrainerSettings& s) {
         s.optimizer = Optimizer::adam;
         s.adam_beta1 = 1.0f;
       },
       "beta"},
      {"adam epsilon of 0",
       [](TrainerSettings& s) {
         s.optimizer = Optimizer::adam;
         s.adam_epsilon = 0.0f;
       },
       "epsilon"},
      {"negative clipping norm", [](TrainerSettings& s) { s.clip_grad_norm = -1.0f; }, "clipping"},
      {"cosine without cosine_epochs",
       [](TrainerSettings& s) { s.schedule = LearningRateSchedule::cosine; }, "cosine_epochs"},
      {"step schedule of 0 epochs",
       [](TrainerSettings& s) {
         s.schedule = LearningRateSchedule::step;
         s.schedule_step_epochs = 0;
       },
       "step epochs"},
  }));
  CAPTURE(description);
  Model model = make_model(Loss::mse, false, 61);
  TrainerSettings settings = settings_for(Optimizer::sgd, 0.1f);
  change(settings);
  const std::string message =
      thrown_message<shardprop::Error>([&] { Trainer trainer(model, settings); });
  CAPTURE(message);
  CHECK_THAT(message, Contains("trainer settings"));
  CHECK_THAT(message, Contains(fragment));
}

TEST_CASE(
    "A learning rate so large that training overflows throws an Error naming the epoch, the "
    "step and the learning rate",
    "[optimizer]") {
  const auto optimizer = GENERATE(Optimizer::sgd, Optimizer::adam);
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(to_string(optimizer), batch_norm);
  TrainerSettings settings = settings_for(optimizer, 1e20f);
  settings.batch_size = 4;
  const shardprop::Dataset data = tiny_dataset(16);  // four steps an epoch
  Model model = make_model(Loss::mse, batch_norm, 71);
  Trainer trainer(model, settings);
  std::string message;
  for (int epoch = 0; epoch < 5 && message.empty(); ++epoch) {
    try {
      trainer.train_epoch(data);
    } catch (const shardprop::Error& e) {
      message = e.what();
    }
  }
  CAPTURE(message);
  REQUIRE_FALSE(message.empty());
  // Counted from 1, as a person reads them: the step that failed did not complete.
  CHECK_THAT(message, Contains("epoch " + std::to_string(trainer.epochs_completed() + 1)));
  CHECK_THAT(message, Contains("step " + std::to_string(trainer.steps_completed() + 1)));
  CHECK_THAT(message, Contains("learning rate"));
  CHECK_THAT(message, Contains("not finite"));
}

TEST_CASE("A step whose loss is not finite throws and leaves the model unchanged", "[optimizer]") {
  // Identity hidden units (a saturating tanh would keep the loss finite), and batch norm, whose
  // running statistics the forward pass updates before the loss is known.
  const bool batch_norm = GENERATE(false, true);
  CAPTURE(batch_norm);
  const int hidden[] = {5};
  Model model(ModelSpec::mlp(3, hidden, 2, Activation::identity, Loss::mse, batch_norm));
  model.initialize(81);
  const Model before = model;
  Trainer trainer(model, settings_for(Optimizer::adam, 0.01f));
  // Finite inputs whose products overflow float: the forward pass reaches Inf, the loss NaN.
  Batch batch = make_batches(model, 1, kRows, 82)[0];
  for (float& x : batch.features) x = x < 0.0f ? -3e38f : 3e38f;
  const std::string message =
      thrown_message<shardprop::Error>([&] { trainer.step(batch.features, batch.targets); });
  CAPTURE(message);
  CHECK_THAT(message, Contains("loss is not finite"));
  CHECK_THAT(message, Contains("epoch 1, step 1"));
  CHECK(trainer.steps_completed() == 0);
  CHECK(same_bits(model.parameters(), before.parameters()));
  CHECK(std::equal(model.counters().begin(), model.counters().end(), before.counters().begin(),
                   before.counters().end()));
}
