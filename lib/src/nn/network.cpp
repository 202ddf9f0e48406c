// Network layout and the per-shard training pass. Between two batch-norm layers a shard's
// work is one task: phases end only where the whole minibatch must be combined.
#include "nn/network.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <functional>
#include <string>
#include <utility>

#include "base/overloaded.hpp"
#include "nn/loss.hpp"
#include "shardprop/error.hpp"

namespace shardprop::detail {
namespace {

Matrix view(AlignedFloats& storage, int rows, int cols) {
  return {storage.data(), rows, cols, cols};
}

// Whether a layer holds trained tensors (so the backward pass must reach it).
bool has_parameters(const Layer& layer) {
  return std::visit(Overloaded{
                        [](const Dense&) { return true; },
                        [](const ActivationLayer&) { return false; },
                        [](const BatchNorm&) { return true; },
                        [](const Dropout&) { return false; },
                    },
                    layer);
}

// Where a shard's partials for a batch norm of width w live in ShardWorkspace::partials[k].
struct PartialLayout {
  int width;
  double* count(std::vector<double>& p) const { return p.data(); }
  double* mean(std::vector<double>& p) const { return p.data() + 1; }
  double* m2(std::vector<double>& p) const { return p.data() + 1 + width; }
  double* sum_dy(std::vector<double>& p) const {
    return p.data() + BatchNormPartials::sums_offset(width);
  }
  double* sum_dy_xhat(std::vector<double>& p) const { return sum_dy(p) + width; }
};

}  // namespace

void validate(const ModelSpec& spec) {
  if (spec.inputs <= 0) {
    throw Error("model: inputs must be positive, got " + std::to_string(spec.inputs));
  }
  if (spec.layers.empty()) throw Error("model: no layers");
  int width = spec.inputs;
  bool has_dense = false;
  for (std::size_t k = 0; k < spec.layers.size(); ++k) {
    const std::string index = std::to_string(k);
    std::visit(
        Overloaded{
            [&](const DenseSpec& d) {
              if (d.units <= 0) {
                throw Error("model: layer " + index + " (dense) needs a positive width, got " +
                            std::to_string(d.units));
              }
              width = d.units;
              has_dense = true;
            },
            [&](const ActivationSpec& a) {
              if (a.activation == Activation::leaky_relu &&
                  !(a.negative_slope >= 0.0f && std::isfinite(a.negative_slope))) {
                throw Error("model: layer " + index +
                            " (leaky_relu) needs a finite negative slope >= 0, got " +
                            std::to_string(a.negative_slope));
              }
            },
            [&](const BatchNormSpec& b) {
              if (!(b.epsilon > 0.0f) || !std::isfinite(b.epsilon)) {
                throw Error("model: layer " + index + " (batch norm) needs epsilon > 0");
              }
              if (!(b.momentum >= 0.0f && b.momentum <= 1.0f)) {
                throw Error("model: layer " + index + " (batch norm) needs momentum in [0, 1]");
              }
            },
            [&](const DropoutSpec& d) {
              if (!(d.rate >= 0.0f && d.rate < 1.0f)) {
                throw Error("model: layer " + index + " (dropout) needs a rate in [0, 1), got " +
                            std::to_string(d.rate));
              }
            },
        },
        spec.layers[k]);
  }
  if (!has_dense) throw Error("model: needs at least one dense layer");
  if (spec.loss == Loss::xent && width < 2) {
    throw Error("model: the xent loss needs at least 2 outputs (classes), got " +
                std::to_string(width));
  }
}

bool writes_in_place(std::span<const LayerSpec> layers, std::size_t k) {
  return k > 0 && std::holds_alternative<ActivationSpec>(layers[k]) &&
         !std::holds_alternative<ActivationSpec>(layers[k - 1]);
}

double forward_flops_per_row(const ModelSpec& spec) {
  validate(spec);
  double weights = 0.0;
  double width = spec.inputs;
  for (const LayerSpec& layer : spec.layers) {
    std::visit(Overloaded{
                   [&](const DenseSpec& d) {
                     weights += width * d.units;
                     width = d.units;
                   },
                   [](const ActivationSpec&) {},
                   [](const BatchNormSpec&) {},
                   [](const DropoutSpec&) {},
               },
               layer);
  }
  return 2.0 * weights;
}

Network::Network(ModelSpec model_spec) : spec(std::move(model_spec)) {
  validate(spec);
  int width = spec.inputs;
  std::size_t offset = 0;
  bool found_trainable = false;
  max_width = width;
  auto add_tensor = [&](const std::string& name, std::vector<std::int64_t> shape, std::size_t size,
                        TensorRole role) {
    tensors.push_back({name, std::move(shape), offset, size, role});
    offset = pad_to_line(offset + size);
    return tensors.back().offset;
  };
  for (std::size_t k = 0; k < spec.layers.size(); ++k) {
    const std::string index = std::to_string(k);
    std::visit(
        Overloaded{
            [&](const DenseSpec& d) {
              Dense dense{width, d.units, 0, 0};
              dense.weight =
                  add_tensor(index + ".weight", {d.units, width},
                             static_cast<std::size_t>(d.units) * width, TensorRole::weight);
              dense.bias = add_tensor(index + ".bias", {d.units}, d.units, TensorRole::bias);
              layers.emplace_back(dense);
              width = d.units;
            },
            [&](const ActivationSpec& a) {
              layers.emplace_back(ActivationLayer{
                  a.activation, width,
                  a.activation == Activation::leaky_relu ? a.negative_slope : 0.0f});
            },
            [&](const BatchNormSpec& b) {
              BatchNorm bn;
              bn.width = width;
              bn.epsilon = b.epsilon;
              bn.momentum = b.momentum;
              bn.gamma = add_tensor(index + ".weight", {width}, width, TensorRole::bias);
              bn.beta = add_tensor(index + ".bias", {width}, width, TensorRole::bias);
              bn.running_mean =
                  add_tensor(index + ".running_mean", {width}, width, TensorRole::running_stat);
              bn.running_var =
                  add_tensor(index + ".running_var", {width}, width, TensorRole::running_stat);
              bn.counter = counter_count++;
              tensors.push_back(
                  {index + ".num_batches_tracked", {}, bn.counter, 1, TensorRole::batch_counter});
              batch_norms.push_back(static_cast<int>(k));
              layers.emplace_back(bn);
            },
            [&](const DropoutSpec& d) {
              layers.emplace_back(Dropout{d.rate, width, static_cast<int>(k)});
            },
        },
        spec.layers[k]);
    if (!found_trainable && has_parameters(layers.back())) {
      first_trainable = k;
      found_trainable = true;
    }
    widths.push_back(width);
    max_width = std::max(max_width, width);
    output_slot.push_back(writes_in_place(spec.layers, k) ? output_slot[k - 1] : k);
  }
  parameter_count = offset;
  parameters.assign(parameter_count, 0.0f);
  counters.assign(counter_count, 0);
}

ShardWorkspace Network::make_workspace(int capacity_rows) const {
  ShardWorkspace ws;
  ws.capacity_rows = capacity_rows;
  const std::size_t rows = static_cast<std::size_t>(capacity_rows);
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::size_t size = rows * widths[l];
    ws.outputs.emplace_back(output_slot[l] == l ? size : 0, 0.0f);
    // What each kind keeps besides its output: batch norm xhat and its partials, dropout a mask.
    std::size_t xhat = 0;
    std::size_t mask = 0;
    std::visit(Overloaded{
                   [](const Dense&) {},
                   [](const ActivationLayer&) {},
                   [&](const BatchNorm& b) {
                     xhat = size;
                     ws.partials.emplace_back(BatchNormPartials::size(b.width), 0.0);
                   },
                   [&](const Dropout&) { mask = size; },
               },
               layers[l]);
    ws.xhat.emplace_back(xhat, 0.0f);
    ws.masks.emplace_back(mask, 0.0f);
  }
  ws.delta_a.assign(rows * max_width, 0.0f);
  ws.delta_b.assign(rows * max_width, 0.0f);
  return ws;
}

ShardWorkspace Network::make_inference_workspace(int capacity_rows) const {
  ShardWorkspace ws;
  ws.capacity_rows = capacity_rows;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const std::size_t size = static_cast<std::size_t>(capacity_rows) * widths[l];
    ws.outputs.emplace_back(output_slot[l] == l ? size : 0, 0.0f);
  }
  return ws;
}

std::vector<BatchNormSync> Network::make_syncs() const {
  std::vector<BatchNormSync> syncs;
  for (std::size_t k = 0; k < batch_norms.size(); ++k) {
    syncs.emplace_back(batch_norm(static_cast<int>(k)).width);
  }
  return syncs;
}

const BatchNorm& Network::batch_norm(int k) const {
  // batch_norms lists exactly the BatchNorm layers (the constructor's visit adds them), so
  // this is a lookup, not a dispatch over layer kinds.
  return *std::get_if<BatchNorm>(&layers[static_cast<std::size_t>(batch_norms[k])]);
}

ConstMatrix Network::forward(const float* params, ConstMatrix x, ShardWorkspace& ws) const {
  ConstMatrix in = x;
  for (std::size_t l = 0; l < layers.size(); ++l) {
    const Matrix out = view(ws.outputs[output_slot[l]], x.rows, widths[l]);
    std::visit(Overloaded{
                   [&](const Dense& d) {
                     d.forward(params, in, out);
                     in = out;
                   },
                   [&](const ActivationLayer& a) {
                     // In place, unless the layer below left its input elsewhere (dropout is
                     // the identity here and writes nothing).
                     a.forward(in, out);
                     in = out;
                   },
                   [&](const BatchNorm& b) {
                     b.forward_inference(params, in, out);
                     in = out;
                   },
                   [](const Dropout&) {},  // the identity in inference
               },
               layers[l]);
  }
  return in;
}

void Network::begin_pass(ShardWorkspace& ws, ConstMatrix x, const float* targets, float scale,
                         DropoutKey key) const {
  assert(x.rows <= ws.capacity_rows);
  ws.x = x;
  ws.targets = targets;
  ws.scale = scale;
  ws.dropout = key;
  ws.loss = 0.0;
}

namespace {

constexpr std::size_t kNoLayer = static_cast<std::size_t>(-1);

// The pieces of a phase, shared by run_phase's three cases.
struct PhaseRunner {
  const Network& net;
  const float* params;
  std::span<const BatchNormSync> syncs;
  ShardWorkspace& ws;
  float* grads;
  const std::function<void(int layer)>* layer_done;
  PhaseClock clock;  // reads no clock unless ws.profile

  int rows() const { return ws.x.rows; }
  void done(std::size_t l) const {
    if (layer_done != nullptr) (*layer_done)(static_cast<int>(l));
  }
  ConstMatrix input_of(std::size_t l) { return l == 0 ? ws.x : ConstMatrix(output_of(l - 1)); }
  Matrix output_of(std::size_t l) {
    return view(ws.outputs[net.output_slot[l]], rows(), net.widths[l]);
  }
  int bn_index(std::size_t l) const {
    return static_cast<int>(
        std::find(net.batch_norms.begin(), net.batch_norms.end(), static_cast<int>(l)) -
        net.batch_norms.begin());
  }

  // Layers [begin, end) in training mode; a batch norm at `begin` uses the combined moments.
  void forward(std::size_t begin, std::size_t end) {
    for (std::size_t l = begin; l < end; ++l) {
      const ConstMatrix in = input_of(l);
      Matrix out = output_of(l);
      std::visit(Overloaded{
                     [&](const Dense& d) {
                       d.copy_bias(params, out);
                       clock.lap(&PhaseSeconds::forward_elementwise);
                       d.add_product(params, in, out);
                       clock.lap(&PhaseSeconds::forward_gemm);
                     },
                     [&](const ActivationLayer& a) {
                       a.forward(in, out);  // in place (Network::output_slot)
                       clock.lap(&PhaseSeconds::forward_elementwise);
                     },
                     [&](const BatchNorm& b) {
                       const BatchNormSync& s = syncs[bn_index(l)];
                       b.normalize(params, s.mean_hi.data(), s.mean_lo.data(), s.inv_std.data(), in,
                                   view(ws.xhat[l], rows(), b.width), out);
                       clock.lap(&PhaseSeconds::forward_elementwise);
                     },
                     [&](const Dropout& d) {
                       d.forward_train(ws.dropout, in, out, view(ws.masks[l], rows(), d.width));
                       clock.lap(&PhaseSeconds::forward_elementwise);
                     },
                 },
                 net.layers[l]);
    }
  }

  void moments_of_input(int k) {
    const std::size_t l = static_cast<std::size_t>(net.batch_norms[k]);
    const BatchNorm& b = net.batch_norm(k);
    const PartialLayout p{b.width};
    std::vector<double>& partial = ws.partials[k];
    b.partial_moments(input_of(l), {p.count(partial), p.mean(partial), p.m2(partial)});
    clock.lap(&PhaseSeconds::forward_elementwise);
  }

  void sums_of_output(int k) {
    const std::size_t l = static_cast<std::size_t>(net.batch_norms[k]);
    const BatchNorm& b = net.batch_norm(k);
    const PartialLayout p{b.width};
    std::vector<double>& partial = ws.partials[k];
    b.partial_sums(ws.delta, view(ws.xhat[l], rows(), b.width), p.sum_dy(partial),
                   p.sum_dy_xhat(partial), grads);
    clock.lap(&PhaseSeconds::backward_elementwise);
    done(l);  // γ's and β's gradients
  }

  // Layers from `top` down to `bottom` (inclusive, no batch norm among them); ws.delta holds
  // dL/d(output of top) on entry and dL/d(input of bottom) on return.
  void backward(std::size_t top, std::size_t bottom) {
    // The dense layer whose bias gradient an activation above it summed in its own pass.
    std::size_t bias_summed = kNoLayer;
    for (std::size_t l = top + 1; l-- > bottom;) {
      std::visit(Overloaded{
                     [&](const Dense& d) {
                       // d.backward's three pieces, timed apart.
                       d.weight_gradient(input_of(l), ws.delta, grads);
                       clock.lap(&PhaseSeconds::backward_gemm);
                       if (bias_summed != l) {
                         d.bias_gradient(ws.delta, grads);
                         clock.lap(&PhaseSeconds::backward_elementwise);
                       }
                       if (l > net.first_trainable) {
                         d.input_gradient(params, ws.delta, {ws.spare.data, rows(), d.in, d.in});
                         clock.lap(&PhaseSeconds::backward_gemm);
                       }
                       done(l);
                       std::swap(ws.delta.data, ws.spare.data);
                       ws.delta.cols = ws.delta.stride = d.in;
                     },
                     [&](const ActivationLayer& a) {
                       // Followed (going down) by a dense layer: its bias gradient Σ_rows δ
                       // comes from the same pass over δ.
                       const Dense* below =
                           l > bottom ? std::get_if<Dense>(&net.layers[l - 1]) : nullptr;
                       if (below != nullptr) {
                         a.backward_with_column_sums(output_of(l), ws.delta, grads + below->bias);
                         bias_summed = l - 1;
                       } else {
                         a.backward(output_of(l), ws.delta);
                       }
                       clock.lap(&PhaseSeconds::backward_elementwise);
                     },
                     [&](const Dropout& d) {
                       d.backward(view(ws.masks[l], rows(), d.width), ws.delta);
                       clock.lap(&PhaseSeconds::backward_elementwise);
                     },
                     [&](const BatchNorm&) { assert(false && "phases end at batch norms"); },
                 },
                 net.layers[l]);
    }
  }
};

}  // namespace

void Network::run_phase(int phase, const float* params, std::span<const BatchNormSync> syncs,
                        ShardWorkspace& ws, float* grads,
                        const std::function<void(int layer)>* layer_done) const {
  const int bn_count = static_cast<int>(batch_norms.size());
  const std::size_t layer_count = layers.size();
  PhaseRunner run{
      *this, params, syncs, ws, grads, layer_done, PhaseClock(ws.profile ? &ws.seconds : nullptr)};
  if (phase < bn_count) {
    // Forward up to batch norm `phase`, then its partial moments.
    const std::size_t begin = phase == 0 ? 0 : static_cast<std::size_t>(batch_norms[phase - 1]);
    run.forward(begin, static_cast<std::size_t>(batch_norms[phase]));
    run.moments_of_input(phase);
    return;
  }
  if (phase == bn_count) {
    // Rest of the forward pass, the loss, and backward down to the last batch norm's output.
    const std::size_t begin = bn_count == 0 ? 0 : static_cast<std::size_t>(batch_norms.back());
    run.forward(begin, layer_count);
    const std::size_t last = layer_count - 1;
    ws.delta = view(ws.delta_a, run.rows(), widths[last]);
    ws.spare = view(ws.delta_b, run.rows(), max_width);
    ws.loss = loss_forward_backward(spec.loss, run.output_of(last), ws.targets, ws.scale, ws.delta,
                                    &ws.metrics);
    run.clock.lap(&PhaseSeconds::forward_elementwise);  // the loss, δ = dL/dy and the metric sums
    if (bn_count == 0) {
      run.backward(last, first_trainable);
      return;
    }
    run.backward(last, static_cast<std::size_t>(batch_norms.back()) + 1);
    run.sums_of_output(bn_count - 1);
    return;
  }
  // Backward through batch norm k with the combined sums, then down to the one below.
  const int k = 2 * bn_count - phase;
  const std::size_t l = static_cast<std::size_t>(batch_norms[k]);
  if (l == first_trainable) return;  // nothing below learns: no dx needed
  const BatchNorm& b = batch_norm(k);
  const BatchNormSync& s = syncs[k];
  b.backward_input(s.grad_scale.data(), s.mean_dy.data(), s.mean_dy_xhat.data(), ws.delta,
                   view(ws.xhat[l], run.rows(), b.width), ws.delta);
  run.clock.lap(&PhaseSeconds::backward_elementwise);
  if (k == 0) {
    run.backward(l - 1, first_trainable);
    return;
  }
  run.backward(l - 1, static_cast<std::size_t>(batch_norms[k - 1]) + 1);
  run.sums_of_output(k - 1);
}

double Network::training_pass(const float* params, ConstMatrix x, const float* targets, float scale,
                              ShardWorkspace& ws, float* grads, DropoutKey key) const {
  std::vector<BatchNormSync> syncs = make_syncs();
  begin_pass(ws, x, targets, scale, key);
  for (int phase = 0; phase < phase_count(); ++phase) {
    run_phase(phase, params, syncs, ws, grads);
    if (phase + 1 == phase_count()) break;
    // The whole minibatch is this one shard: its partials are the totals.
    const int k = combined_batch_norm(phase);
    const BatchNorm& layer = batch_norm(k);
    BatchNormSync& sync = syncs[static_cast<std::size_t>(k)];
    const double* partial = ws.partials[static_cast<std::size_t>(k)].data();
    if (ends_with_moments(phase)) {
      sync.begin_moments();
      sync.merge_moments(partial);
      sync.finish_moments(layer);
    } else {
      sync.begin_sums();
      sync.add_sums(partial + BatchNormPartials::sums_offset(layer.width));
      sync.finish_sums(layer, params);
    }
  }
  return ws.loss;
}

}  // namespace shardprop::detail
