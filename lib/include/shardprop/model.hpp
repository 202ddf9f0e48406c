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

enum class Activation { identity, sigmoid, tanh, relu };
enum class Loss { mse, xent, bce };

// "identity", "sigmoid", "tanh", "relu" / "mse", "xent", "bce". Throws Error on anything else.
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
};
using LayerSpec = std::variant<DenseSpec, ActivationSpec>;

// The network in the order of PyTorch's nn.Sequential: layer k's tensors are named "k.weight",
// "k.bias". The loss applies to the output of the last layer (logits for xent and bce, which
// include their own softmax / sigmoid).
struct ModelSpec {
  int inputs = 0;
  std::vector<LayerSpec> layers;
  Loss loss = Loss::mse;

  // The usual multilayer perceptron: dense(h) + activation for each hidden width, then a
  // dense output layer with no activation.
  static ModelSpec mlp(int inputs, std::span<const int> hidden, int outputs, Activation activation,
                       Loss loss);
};

// One named tensor inside the flat parameter array (PyTorch state_dict naming).
struct TensorInfo {
  std::string name;                 // "0.weight"
  std::vector<std::int64_t> shape;  // [out, in] for weights, [out] for biases
  std::size_t offset = 0;           // in floats, into parameters()
  std::size_t size = 0;             // in floats
  bool decayed = false;             // weight decay applies (weights yes, biases no)
};

namespace detail {
struct Network;
}

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
  // those followed by relu; biases zero. A pure function of the seed.
  void initialize(std::uint64_t seed);

  const ModelSpec& spec() const;
  int inputs() const;
  int outputs() const;

  // All weights and biases, 64-byte aligned, in tensors() order.
  std::span<float> parameters();
  std::span<const float> parameters() const;
  const std::vector<TensorInfo>& tensors() const;

  // Forward pass in inference mode. features: [rows, inputs] row-major; outputs: [rows,
  // outputs()]. Raw network outputs (logits for xent/bce). Throws Error on size mismatch.
  void predict(std::span<const float> features, std::span<float> outputs) const;

  const detail::Network& network() const;  // for the library's own use

 private:
  std::unique_ptr<detail::Network> network_;
};

}  // namespace shardprop
