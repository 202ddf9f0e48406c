// parse_layers on arbitrary text: it returns layers or throws shardprop::Error. Returned layers
// format_layers to text that parses back to the same layers, bit for bit, and that formats to
// the same text; a small stack of them builds a Model that predicts, or is rejected with an
// Error.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "fuzz_support.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"

using namespace shardprop;

namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

bool same_layer(const LayerSpec& a, const LayerSpec& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& left) {
        using Spec = std::decay_t<decltype(left)>;
        const Spec& right = std::get<Spec>(b);
        if constexpr (std::is_same_v<Spec, DenseSpec>) return left.units == right.units;
        if constexpr (std::is_same_v<Spec, ActivationSpec>) {
          return left.activation == right.activation &&
                 same_bits(left.negative_slope, right.negative_slope);
        }
        if constexpr (std::is_same_v<Spec, BatchNormSpec>) {
          return same_bits(left.epsilon, right.epsilon) && same_bits(left.momentum, right.momentum);
        }
        if constexpr (std::is_same_v<Spec, DropoutSpec>) return same_bits(left.rate, right.rate);
      },
      a);
}

// Dense widths small enough that a model of them is cheap to build.
bool small(const std::vector<LayerSpec>& layers) {
  std::int64_t units = 0;
  for (const LayerSpec& layer : layers) {
    if (const auto* dense = std::get_if<DenseSpec>(&layer)) units += dense->units;
  }
  return layers.size() <= 64 && units <= 4096;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<LayerSpec> layers;
  try {
    layers = parse_layers(text);
  } catch (const Error&) {
    return 0;
  } catch (const std::exception& e) {
    fuzz::fail_unexpected(e);
  }
  FUZZ_CHECK(!layers.empty(), "parse_layers returned no layers for '" + std::string(text) + "'");

  const std::string formatted = format_layers(layers);
  std::vector<LayerSpec> again;
  try {
    again = parse_layers(formatted);
  } catch (const std::exception& e) {
    fuzz::fail("format_layers wrote '" + formatted + "', which does not parse: " + e.what());
  }
  FUZZ_CHECK(again.size() == layers.size(), "'" + formatted + "' parses to another layer count");
  for (std::size_t k = 0; k < layers.size(); ++k) {
    FUZZ_CHECK(same_layer(layers[k], again[k]),
               "layer " + std::to_string(k) + " of '" + formatted + "' reads back differently");
  }
  FUZZ_CHECK(format_layers(again) == formatted, "'" + formatted + "' formats differently");

  if (small(layers)) {
    try {
      ModelSpec spec;
      spec.inputs = 3;
      spec.layers = layers;
      Model model(spec);
      model.initialize(1);
      FUZZ_CHECK(model.outputs() >= 1, "a model without outputs");
      const std::vector<float> features{0.5f, -1.0f, 2.0f};
      std::vector<float> outputs(static_cast<std::size_t>(model.outputs()));
      model.predict(features, outputs);
    } catch (const Error&) {
      // A stack the model rejects (no dense layer, a dropout last, ...).
    } catch (const std::exception& e) {
      fuzz::fail_unexpected(e);
    }
  }
  return 0;
}
