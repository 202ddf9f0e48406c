// Model: spec parsing, parameter initialisation and inference over the Network.
#include "shardprop/model.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "base/overloaded.hpp"
#include "base/rng.hpp"
#include "nn/activation.hpp"
#include "nn/network.hpp"
#include "shardprop/error.hpp"

namespace shardprop {

Activation parse_activation(std::string_view name) {
  if (const std::optional<Activation> activation = detail::find_activation(name))
    return *activation;
  throw Error("unknown activation '" + std::string(name) +
              "' (expected identity, sigmoid, tanh, relu or leaky_relu)");
}

Loss parse_loss(std::string_view name) {
  if (name == "mse") return Loss::mse;
  if (name == "xent") return Loss::xent;
  if (name == "bce") return Loss::bce;
  throw Error("unknown loss '" + std::string(name) + "' (expected mse, xent or bce)");
}

std::string_view to_string(Activation activation) { return detail::activation_name(activation); }

std::string_view to_string(Loss loss) {
  switch (loss) {
    case Loss::mse:
      return "mse";
    case Loss::xent:
      return "xent";
    case Loss::bce:
      return "bce";
  }
  return "?";
}

ModelSpec ModelSpec::mlp(int inputs, std::span<const int> hidden, int outputs,
                         Activation activation, Loss loss, bool batch_norm, float dropout) {
  ModelSpec spec;
  spec.inputs = inputs;
  spec.loss = loss;
  for (int width : hidden) {
    spec.layers.emplace_back(DenseSpec{width});
    if (batch_norm) spec.layers.emplace_back(BatchNormSpec{});
    spec.layers.emplace_back(ActivationSpec{activation});
    if (dropout > 0.0f) spec.layers.emplace_back(DropoutSpec{dropout});
  }
  spec.layers.emplace_back(DenseSpec{outputs});
  return spec;
}

Model::Model(ModelSpec spec) : network_(std::make_unique<detail::Network>(std::move(spec))) {}
Model::Model(const Model& other) : network_(std::make_unique<detail::Network>(*other.network_)) {}
Model& Model::operator=(const Model& other) {
  if (this != &other) network_ = std::make_unique<detail::Network>(*other.network_);
  return *this;
}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

namespace {

bool is_batch_norm(const detail::Layer& layer) {
  return std::visit(detail::Overloaded{
                        [](const detail::Dense&) { return false; },
                        [](const detail::ActivationLayer&) { return false; },
                        [](const detail::BatchNorm&) { return true; },
                        [](const detail::Dropout&) { return false; },
                    },
                    layer);
}

// The negative slope of a relu-like activation (0 for relu), or none for other layers.
std::optional<double> relu_slope(const detail::Layer& layer) {
  return std::visit(
      detail::Overloaded{
          [](const detail::Dense&) -> std::optional<double> { return std::nullopt; },
          [](const detail::ActivationLayer& a) -> std::optional<double> {
            if (a.kind == Activation::relu) return 0.0;
            if (a.kind == Activation::leaky_relu) return a.negative_slope;
            return std::nullopt;
          },
          [](const detail::BatchNorm&) -> std::optional<double> { return std::nullopt; },
          [](const detail::Dropout&) -> std::optional<double> { return std::nullopt; },
      },
      layer);
}

// The slope of the relu-like activation layer k feeds, looking past one batch norm.
std::optional<double> feeds_relu(const detail::Network& net, std::size_t k) {
  std::size_t next = k + 1;
  if (next < net.layers.size() && is_batch_norm(net.layers[next])) ++next;
  if (next >= net.layers.size()) return std::nullopt;
  return relu_slope(net.layers[next]);
}

// He keeps the variance of relu activations (with PyTorch's gain √(2/(1+α²)) for a leaky relu
// of slope α); Glorot balances forward and backward variance.
void initialize_dense(detail::Network& net, std::size_t k, const detail::Dense& dense,
                      std::uint64_t seed) {
  const std::optional<double> slope = feeds_relu(net, k);
  const double limit = slope ? std::sqrt(6.0 / ((1.0 + *slope * *slope) * dense.in))
                             : std::sqrt(6.0 / (dense.in + dense.out));
  const std::size_t count = static_cast<std::size_t>(dense.in) * dense.out;
  float* w = net.parameters.data() + dense.weight;
  for (std::size_t i = 0; i < count; ++i) {
    const float u =
        detail::uniform01(detail::random_bits(seed, detail::RngPurpose::initialize, k, i));
    w[i] = static_cast<float>((2.0 * u - 1.0) * limit);
  }
}

}  // namespace

void Model::initialize(std::uint64_t seed) {
  detail::Network& net = *network_;
  std::fill(net.parameters.begin(), net.parameters.end(), 0.0f);
  std::fill(net.counters.begin(), net.counters.end(), 0);
  for (std::size_t k = 0; k < net.layers.size(); ++k) {
    std::visit(detail::Overloaded{
                   [&](const detail::Dense& dense) { initialize_dense(net, k, dense, seed); },
                   [](const detail::ActivationLayer&) {},
                   [&](const detail::BatchNorm& bn) {
                     std::fill_n(net.parameters.data() + bn.gamma, bn.width, 1.0f);
                     std::fill_n(net.parameters.data() + bn.running_var, bn.width, 1.0f);
                   },
                   [](const detail::Dropout&) {},
               },
               net.layers[k]);
  }
}

const ModelSpec& Model::spec() const { return network_->spec; }
int Model::inputs() const { return network_->spec.inputs; }
int Model::outputs() const { return network_->outputs(); }
std::span<float> Model::parameters() { return network_->parameters; }
std::span<const float> Model::parameters() const { return network_->parameters; }
std::span<std::int64_t> Model::counters() { return network_->counters; }
std::span<const std::int64_t> Model::counters() const { return network_->counters; }
const std::vector<TensorInfo>& Model::tensors() const { return network_->tensors; }

void Model::predict(std::span<const float> features, std::span<float> outputs) const {
  const detail::Network& net = *network_;
  const int in = inputs();
  const int out = this->outputs();
  if (features.size() % static_cast<std::size_t>(in) != 0) {
    throw Error("predict: " + std::to_string(features.size()) +
                " feature values is not a multiple of the model's " + std::to_string(in) +
                " inputs");
  }
  const std::size_t rows = features.size() / in;
  if (outputs.size() != rows * out) {
    throw Error("predict: output span holds " + std::to_string(outputs.size()) + " values, " +
                std::to_string(rows) + " rows need " + std::to_string(rows * out));
  }
  constexpr int kChunk = detail::kInferenceRows;
  detail::ShardWorkspace& ws = net.inference.local(net);
  for (std::size_t begin = 0; begin < rows; begin += kChunk) {
    const int n = static_cast<int>(std::min<std::size_t>(kChunk, rows - begin));
    const detail::ConstMatrix x{features.data() + begin * in, n, in, in};
    const detail::ConstMatrix y = net.forward(net.parameters.data(), x, ws);
    for (int r = 0; r < n; ++r) std::copy_n(y.row(r), out, outputs.data() + (begin + r) * out);
  }
}

}  // namespace shardprop
