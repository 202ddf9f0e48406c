// The text form of a layer stack ("dense(256) bn relu dropout(0.2) dense(10)"): parse_layers and
// format_layers. Only syntax and each layer's own values are checked here; rules about the whole
// stack (a dense layer somewhere, widths that fit the data) belong to the Model constructor.
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "base/overloaded.hpp"
#include "nn/activation.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"

namespace shardprop {

namespace {

constexpr std::string_view kExpectedLayers =
    "expected dense(N), bn, relu, leaky_relu, tanh, sigmoid, identity or dropout(P)";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_separator(char c) { return is_space(c) || c == ','; }
bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// Appended piece by piece: GCC 12's -Wrestrict misfires on "'" + std::string(...) at -O3.
std::string quoted(std::string_view text) {
  std::string result;
  result.reserve(text.size() + 2);
  result += '\'';
  result += text;
  result += '\'';
  return result;
}

// Shortest decimal text that reads back to the same float.
std::string float_text(float value) {
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  (void)ec;  // 32 characters hold any float
  return {buffer.data(), end};
}

// One layer as written: its name, and the text between its parentheses if it has any.
struct LayerText {
  std::size_t start = 0;       // offset of the name in the whole text
  std::string_view whole;      // "bn(eps=1e-3)"
  std::string_view name;       // "bn"
  bool has_arguments = false;  // parentheses present (possibly empty)
  std::string_view arguments;  // "eps=1e-3", untrimmed
};

class LayerParser {
 public:
  explicit LayerParser(std::string_view text) : text_(text) {}

  std::vector<LayerSpec> parse() {
    std::vector<LayerSpec> layers;
    skip_spaces();
    if (at_end()) {
      fail(0, "empty text (expected layers such as 'dense(64) relu dense(10)')");
    }
    if (peek() == ',') fail(pos_, "',': expected a layer before ','");
    for (;;) {
      layers.push_back(parse_layer(read_layer()));
      const std::size_t after_layer = pos_;
      skip_spaces();
      if (at_end()) break;
      if (peek() == ',') {
        const std::size_t comma = pos_++;
        skip_spaces();
        if (at_end()) fail(comma, "',': expected a layer after ','");
        if (peek() == ',') fail(pos_, "',': expected a layer between two commas");
      } else if (pos_ == after_layer) {
        if (peek() == ')') fail(pos_, "')': unbalanced parenthesis: no '(' to close");
        fail(pos_, quoted(token_at(pos_)) +
                       ": expected a space or comma before it (layers are "
                       "separated by spaces or commas)");
      }
    }
    return layers;
  }

 private:
  [[noreturn]] static void fail(std::size_t offset, const std::string& message) {
    throw Error("model spec, column " + std::to_string(offset + 1) + ": " + message);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }
  void skip_spaces() {
    while (!at_end() && is_space(peek())) ++pos_;
  }

  // The text from offset up to the next separator, for messages about a stray token.
  std::string_view token_at(std::size_t offset) const {
    std::size_t end = offset;
    while (end < text_.size() && !is_separator(text_[end])) ++end;
    return text_.substr(offset, end - offset);
  }

  // A name, optionally followed (after spaces) by one parenthesized argument list.
  LayerText read_layer() {
    LayerText layer;
    layer.start = pos_;
    if (peek() == ')') fail(pos_, "')': unbalanced parenthesis: no '(' to close");
    if (!is_name_char(peek())) {
      fail(pos_,
           "unexpected " + quoted(token_at(pos_)) + " (" + std::string(kExpectedLayers) + ")");
    }
    while (!at_end() && is_name_char(peek())) ++pos_;
    layer.name = text_.substr(layer.start, pos_ - layer.start);
    const std::size_t name_end = pos_;
    skip_spaces();
    if (at_end() || peek() != '(') {
      pos_ = name_end;
      layer.whole = layer.name;
      return layer;
    }
    const std::size_t open = pos_++;
    while (!at_end() && peek() != ')') {
      if (peek() == '(') {
        fail(layer.start, quoted(text_.substr(layer.start, pos_ + 1 - layer.start)) +
                              ": nested '(' (arguments are plain numbers)");
      }
      ++pos_;
    }
    if (at_end()) {
      fail(layer.start, quoted(trim(text_.substr(layer.start))) +
                            ": unbalanced parenthesis: the '(' at column " +
                            std::to_string(open + 1) + " is never closed (expected ')')");
    }
    ++pos_;  // ')'
    layer.whole = text_.substr(layer.start, pos_ - layer.start);
    layer.has_arguments = true;
    layer.arguments = text_.substr(open + 1, pos_ - open - 2);
    return layer;
  }

  [[noreturn]] static void fail_layer(const LayerText& layer, const std::string& problem) {
    fail(layer.start, quoted(layer.whole) + ": " + problem);
  }

  static LayerSpec parse_layer(const LayerText& layer) {
    const std::string_view name = layer.name;
    if (const std::optional<Activation> activation = detail::find_activation(name)) {
      if (*activation == Activation::leaky_relu) return parse_leaky_relu(layer);
      if (layer.has_arguments) fail_layer(layer, std::string(name) + " takes no arguments");
      return ActivationSpec{*activation};
    }
    if (name == "dense") return parse_dense(layer);
    if (name == "dropout") return parse_dropout(layer);
    if (name == "bn" || name == "batchnorm") return parse_batch_norm(layer);

    std::string lower(name);
    for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    const bool known_in_lowercase = lower == "dense" || lower == "bn" || lower == "batchnorm" ||
                                    lower == "dropout" || detail::find_activation(lower);
    if (known_in_lowercase) {
      fail(layer.start,
           "unknown layer " + quoted(name) + " (layer names are lowercase: " + quoted(lower) + ")");
    }
    fail(layer.start, "unknown layer " + quoted(name) + " (" + std::string(kExpectedLayers) + ")");
  }

  // leaky_relu or leaky_relu(α): PyTorch's default slope 0.01, or a number >= 0.
  static LayerSpec parse_leaky_relu(const LayerText& layer) {
    ActivationSpec spec{Activation::leaky_relu};
    if (!layer.has_arguments) return spec;
    spec.negative_slope = parse_float(layer, trim(layer.arguments), "the negative slope");
    if (spec.negative_slope < 0.0f) {
      fail_layer(layer, "the negative slope must be >= 0 (leaky_relu(A), e.g. leaky_relu(0.1))");
    }
    return spec;
  }

  static LayerSpec parse_dense(const LayerText& layer) {
    const std::string_view argument = trim(layer.arguments);
    if (!layer.has_arguments || argument.empty()) {
      fail_layer(layer, "a dense layer needs its width: dense(N)");
    }
    int units = 0;
    const auto [end, ec] =
        std::from_chars(argument.data(), argument.data() + argument.size(), units);
    const bool whole = end == argument.data() + argument.size();
    if (ec == std::errc::result_out_of_range && whole) {
      if (argument.front() == '-') fail_layer(layer, "a dense layer needs a positive width");
      fail_layer(layer, "the width " + std::string(argument) + " is too large (at most " +
                            std::to_string(std::numeric_limits<int>::max()) + ")");
    }
    if (ec != std::errc() || !whole) {
      fail_layer(layer, "the width " + quoted(argument) +
                            " is not an integer (expected dense(N) with N a positive integer)");
    }
    if (units <= 0) fail_layer(layer, "a dense layer needs a positive width");
    return DenseSpec{units};
  }

  // A float argument; `what` names it in messages ("the dropout rate").
  static float parse_float(const LayerText& layer, std::string_view text, const std::string& what) {
    if (text.empty()) fail_layer(layer, what + " is missing");
    float value = 0.0f;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    const bool whole = end == text.data() + text.size();
    if (ec == std::errc::result_out_of_range && whole) {
      fail_layer(layer, what + " " + std::string(text) + " is out of range for a float");
    }
    if (ec != std::errc() || !whole || !std::isfinite(value)) {
      fail_layer(layer, what + " " + quoted(text) + " is not a number");
    }
    return value + 0.0f;  // -0 reads as 0
  }

  static LayerSpec parse_dropout(const LayerText& layer) {
    if (!layer.has_arguments) fail_layer(layer, "dropout needs its rate: dropout(P), 0 <= P < 1");
    const float rate = parse_float(layer, trim(layer.arguments), "the dropout rate");
    if (!(rate >= 0.0f && rate < 1.0f)) {
      fail_layer(layer, "the dropout rate must be in [0, 1)");
    }
    return DropoutSpec{rate};
  }

  // bn or bn(eps=E), bn(momentum=M), bn(eps=E, momentum=M) in either order.
  static LayerSpec parse_batch_norm(const LayerText& layer) {
    BatchNormSpec spec;
    if (!layer.has_arguments) return spec;
    bool has_epsilon = false;
    bool has_momentum = false;
    std::string_view rest = layer.arguments;
    for (;;) {
      const std::size_t comma = rest.find(',');
      const std::string_view argument = trim(rest.substr(0, comma));
      const std::size_t equals = argument.find('=');
      if (argument.empty() || equals == std::string_view::npos) {
        fail_layer(layer, "expected eps=E or momentum=M" +
                              (argument.empty() ? std::string() : ", found " + quoted(argument)));
      }
      const std::string_view key = trim(argument.substr(0, equals));
      const std::string_view value = trim(argument.substr(equals + 1));
      if (key == "eps") {
        if (has_epsilon) fail_layer(layer, "eps is given twice");
        has_epsilon = true;
        spec.epsilon = parse_float(layer, value, "eps");
        if (!(spec.epsilon > 0.0f)) fail_layer(layer, "eps must be positive");
      } else if (key == "momentum") {
        if (has_momentum) fail_layer(layer, "momentum is given twice");
        has_momentum = true;
        spec.momentum = parse_float(layer, value, "momentum");
        if (!(spec.momentum >= 0.0f && spec.momentum <= 1.0f)) {
          fail_layer(layer, "momentum must be in [0, 1]");
        }
      } else {
        fail_layer(layer,
                   "unknown batch-norm argument " + quoted(key) + " (expected eps or momentum)");
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    return spec;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
};

std::string layer_text(const LayerSpec& layer) {
  return std::visit(
      detail::Overloaded{
          [](const DenseSpec& dense) { return "dense(" + std::to_string(dense.units) + ")"; },
          [](const ActivationSpec& activation) {
            std::string text(to_string(activation.activation));
            if (activation.activation == Activation::leaky_relu &&
                activation.negative_slope != ActivationSpec{}.negative_slope) {
              // appended piecewise: GCC 12 misreports "(" + string (-Wrestrict)
              text.append("(").append(float_text(activation.negative_slope)).append(")");
            }
            return text;
          },
          [](const BatchNormSpec& bn) {
            const BatchNormSpec defaults;
            std::string arguments;
            if (bn.epsilon != defaults.epsilon) arguments = "eps=" + float_text(bn.epsilon);
            if (bn.momentum != defaults.momentum) {
              arguments +=
                  (arguments.empty() ? "momentum=" : ", momentum=") + float_text(bn.momentum);
            }
            return arguments.empty() ? std::string("bn") : "bn(" + arguments + ")";
          },
          [](const DropoutSpec& dropout) { return "dropout(" + float_text(dropout.rate) + ")"; },
      },
      layer);
}

}  // namespace

std::vector<LayerSpec> parse_layers(std::string_view text) { return LayerParser(text).parse(); }

std::string format_layers(std::span<const LayerSpec> layers) {
  std::string text;
  for (const LayerSpec& layer : layers) {
    if (!text.empty()) text += ' ';
    text += layer_text(layer);
  }
  return text;
}

}  // namespace shardprop
