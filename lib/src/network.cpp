// Network layout and the per-shard pass. One shard's forward + backward is one task.
#include "network.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "loss.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};

Matrix view(AlignedFloats& storage, int rows, int cols) {
  return {storage.data(), rows, cols, cols};
}

}  // namespace

Network::Network(ModelSpec model_spec) : spec(std::move(model_spec)) {
  if (spec.inputs <= 0)
    throw Error("model: inputs must be positive, got " + std::to_string(spec.inputs));
  if (spec.layers.empty()) throw Error("model: no layers");
  int width = spec.inputs;
  std::size_t offset = 0;
  bool has_dense = false;
  max_width = width;
  for (std::size_t k = 0; k < spec.layers.size(); ++k) {
    const std::string index = std::to_string(k);
    std::visit(
        Overloaded{
            [&](const DenseSpec& d) {
              if (d.units <= 0) {
                throw Error("model: layer " + index + " (dense) needs a positive width, got " +
                            std::to_string(d.units));
              }
              Dense dense{width, d.units, offset, 0};
              const std::size_t weights = static_cast<std::size_t>(d.units) * width;
              tensors.push_back({index + ".weight", {d.units, width}, offset, weights, true});
              offset = pad_to_line(offset + weights);
              dense.bias = offset;
              tensors.push_back(
                  {index + ".bias", {d.units}, offset, static_cast<std::size_t>(d.units), false});
              offset = pad_to_line(offset + d.units);
              layers.emplace_back(dense);
              width = d.units;
              has_dense = true;
            },
            [&](const ActivationSpec& a) {
              layers.emplace_back(ActivationLayer{a.activation, width});
            },
        },
        spec.layers[k]);
    widths.push_back(width);
    max_width = std::max(max_width, width);
  }
  if (!has_dense) throw Error("model: needs at least one dense layer");
  if (spec.loss == Loss::xent && width < 2) {
    throw Error("model: the xent loss needs at least 2 outputs (classes), got " +
                std::to_string(width));
  }
  parameter_count = offset;
  parameters.assign(parameter_count, 0.0f);
}

ShardWorkspace Network::make_workspace(int capacity_rows) const {
  ShardWorkspace ws;
  ws.capacity_rows = capacity_rows;
  for (int w : widths) ws.outputs.emplace_back(static_cast<std::size_t>(capacity_rows) * w, 0.0f);
  ws.delta_a.assign(static_cast<std::size_t>(capacity_rows) * max_width, 0.0f);
  ws.delta_b.assign(static_cast<std::size_t>(capacity_rows) * max_width, 0.0f);
  return ws;
}

double Network::forward_flops_per_row() const {
  double flops = 0.0;
  for (const TensorInfo& t : tensors) flops += t.decayed ? static_cast<double>(t.size) : 0.0;
  return 2.0 * flops;
}

ConstMatrix Network::forward(const float* params, ConstMatrix x, ShardWorkspace& ws) const {
  ConstMatrix in = x;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    Matrix out = view(ws.outputs[l], x.rows, widths[l]);
    std::visit(Overloaded{
                   [&](const Dense& d) { d.forward(params, in, out); },
                   [&](const ActivationLayer& a) { a.forward(in, out); },
               },
               layers[l]);
    in = out;
  }
  return in;
}

double Network::backward(const float* params, ConstMatrix x, const float* targets, float scale,
                         ShardWorkspace& ws, float* grads) const {
  const int rows = x.rows;
  const std::size_t last = layers.size() - 1;
  Matrix delta = view(ws.delta_a, rows, widths[last]);
  Matrix spare = view(ws.delta_b, rows, max_width);
  const double loss = loss_forward_backward(spec.loss, view(ws.outputs[last], rows, widths[last]),
                                            targets, scale, delta);
  // The first layer with parameters needs no dx: nothing below it learns.
  std::size_t first_trainable = 0;
  while (!std::holds_alternative<Dense>(layers[first_trainable])) ++first_trainable;

  for (std::size_t l = last + 1; l-- > first_trainable;) {
    const ConstMatrix in = l == 0 ? x : ConstMatrix(view(ws.outputs[l - 1], rows, widths[l - 1]));
    std::visit(Overloaded{
                   [&](const Dense& d) {
                     Matrix dx{};
                     if (l > first_trainable) dx = {spare.data, rows, d.in, d.in};
                     d.backward(params, in, delta, grads, dx);
                     std::swap(delta.data, spare.data);
                     delta.cols = delta.stride = d.in;
                   },
                   [&](const ActivationLayer& a) {
                     a.backward(view(ws.outputs[l], rows, widths[l]), delta);
                   },
               },
               layers[l]);
  }
  return loss;
}

}  // namespace shardprop::detail
