// A fully connected network: its specification, its parameters in one flat array, and
// inference. Training lives in trainer.hpp; files in checkpoint.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace shardprop {

enum class Activation { identity, sigmoid, tanh, relu, leaky_relu };
enum class Loss { mse, xent, bce };

// "identity", "sigmoid", "tanh", "relu", "leaky_relu" / "mse", "xent", "bce". Throws Error on
// anything else.
Activation parse_activation(std::string_view name);
Loss parse_loss(std::string_view name);
std::string_view to_string(Activation activation);
std::string_view to_string(Loss loss);

// z = x·Wᵀ + b with W stored [units, inputs] as in PyTorch's nn.Linear.
struct DenseSpec {
  int units = 0;
};
// Element-wise activation applied to the previous layer's output.
struct ActivationSpec {
  Activation activation = Activation::identity;
  // leaky_relu only, as PyTorch's nn.LeakyReLU: y = x for x > 0, else negative_slope·x.
  // Finite and >= 0 (backward reads the sign of x from y).
  float negative_slope = 0.01f;
};
// Batch normalization per feature, as PyTorch's BatchNorm1d: y = γ (z − μ)/√(σ² + ε) + β.
// Training uses the statistics of the whole minibatch (all shards); inference uses running
// estimates updated as r ← (1 − momentum) r + momentum · batch value (unbiased variance).
struct BatchNormSpec {
  float epsilon = 1e-5f;
  float momentum = 0.1f;
};
// Inverted dropout, as PyTorch's nn.Dropout(rate): in training each value is zeroed with
// probability `rate` and the rest scaled by 1/(1 − rate); in inference it passes unchanged.
// Masks are a pure function of (trainer seed, step, sample index in the minibatch, feature),
// so they do not depend on threads or shards. No tensors.
struct DropoutSpec {
  float rate = 0.5f;  // in [0, 1)
};
using LayerSpec = std::variant<DenseSpec, ActivationSpec, BatchNormSpec, DropoutSpec>;

// The network in the order of PyTorch's nn.Sequential: layer k's tensors are named "k.weight",
// "k.bias". The loss applies to the output of the last layer (logits for xent and bce, which
// include their own softmax / sigmoid).
struct ModelSpec {
  int inputs = 0;
  std::vector<LayerSpec> layers;
  Loss loss = Loss::mse;

  // The usual multilayer perceptron: dense(h) [+ batch norm] + activation for each hidden
  // width, then a dense output layer with no activation.
  static ModelSpec mlp(int inputs, std::span<const int> hidden, int outputs, Activation activation,
                       Loss loss, bool batch_norm = false, float dropout = 0.0f);
};

// A layer stack from its text form, for example "dense(256) bn relu dropout(0.2) dense(10)".
// Grammar (docs/model-spec.md): layers separated by spaces or commas; dense(N), bn or
// batchnorm (optionally bn(eps=E, momentum=M)), relu, leaky_relu (optionally leaky_relu(α)),
// tanh, sigmoid, identity, dropout(P).
// Throws Error naming the position of the first problem.
std::vector<LayerSpec> parse_layers(std::string_view text);
// The text form of a layer stack, which parse_layers reads back to the same layers.
std::string format_layers(std::span<const LayerSpec> layers);

// What a tensor is for: trained by SGD, or state the forward pass keeps.
enum class TensorRole {
  weight,         // dense W: trained and weight-decayed
  bias,           // dense b, batch-norm γ and β: trained, not decayed
  running_stat,   // batch-norm running_mean / running_var: float state, not trained
  batch_counter,  // batch-norm num_batches_tracked: int64 scalar, in counters()
};

// One named tensor (PyTorch state_dict naming).
struct TensorInfo {
  std::string name;                 // "0.weight"
  std::vector<std::int64_t> shape;  // [out, in] for weights, [out] for vectors, [] for counters
  std::size_t offset = 0;           // into parameters() (floats) or counters() (batch_counter)
  std::size_t size = 0;             // elements
  TensorRole role = TensorRole::weight;
  bool trained() const { return role == TensorRole::weight || role == TensorRole::bias; }
};

namespace detail {
struct Network;
struct ModelAccess;  // the library's own view of a Model (lib/src/nn/network.hpp)
}  // namespace detail

// Thread safety: const methods may run concurrently; a Trainer mutates its model in step().
class Model {
 public:
  // Validates the spec (positive widths, a dense layer somewhere, ...); throws Error.
  // Parameters start at zero: call initialize() or load a checkpoint.
  explicit Model(ModelSpec spec);
  Model(const Model& other);
  Model& operator=(const Model& other);
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  // Xavier/Glorot uniform for dense layers followed by sigmoid/tanh/identity, He uniform for
  // those followed (directly or after a batch norm) by relu; biases zero; batch norm γ = 1,
  // β = 0, running mean 0, running variance 1, counters 0. A pure function of the seed.
  void initialize(std::uint64_t seed);

  const ModelSpec& spec() const;
  int inputs() const;
  int outputs() const;

  // Every float tensor (weights, biases, γ, β, running statistics), 64-byte aligned, in
  // tensors() order.
  std::span<float> parameters();
  std::span<const float> parameters() const;
  // The int64 tensors (batch-norm num_batches_tracked), in tensors() order.
  std::span<std::int64_t> counters();
  std::span<const std::int64_t> counters() const;
  const std::vector<TensorInfo>& tensors() const;

  // Forward pass in inference mode (batch norm uses its running statistics). features:
  // [rows, inputs] row-major; outputs: [rows, outputs()]. Raw network outputs (logits for
  // xent/bce). Throws Error on size mismatch.
  void predict(std::span<const float> features, std::span<float> outputs) const;

 private:
  friend struct detail::ModelAccess;
  std::unique_ptr<detail::Network> network_;
};

}  // namespace shardprop
