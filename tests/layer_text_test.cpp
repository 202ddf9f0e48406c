// The text form of a layer stack: every valid form, canonical formatting, round trips (also of
// random stacks) and every error with the column it names.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "shardprop/error.hpp"
#include "shardprop/model.hpp"

namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using shardprop::Activation;
using shardprop::ActivationSpec;
using shardprop::BatchNormSpec;
using shardprop::DenseSpec;
using shardprop::DropoutSpec;
using shardprop::format_layers;
using shardprop::LayerSpec;
using shardprop::parse_layers;
using Layers = std::vector<LayerSpec>;

bool same_float(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// The specs have no operator==; floats are compared bit for bit because a round trip must be exact.
bool same_layer(const LayerSpec& a, const LayerSpec& b) {
  if (a.index() != b.index()) return false;
  if (const auto* d = std::get_if<DenseSpec>(&a)) return d->units == std::get<DenseSpec>(b).units;
  if (const auto* act = std::get_if<ActivationSpec>(&a)) {
    const auto& other = std::get<ActivationSpec>(b);
    return act->activation == other.activation &&
           (act->activation != Activation::leaky_relu ||
            same_float(act->negative_slope, other.negative_slope));
  }
  if (const auto* bn = std::get_if<BatchNormSpec>(&a)) {
    const auto& other = std::get<BatchNormSpec>(b);
    return same_float(bn->epsilon, other.epsilon) && same_float(bn->momentum, other.momentum);
  }
  return same_float(std::get<DropoutSpec>(a).rate, std::get<DropoutSpec>(b).rate);
}

bool same_layers(const Layers& a, const Layers& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same_layer(a[i], b[i])) return false;
  }
  return true;
}

// The message parse_layers throws for text, or "" when it does not throw.
std::string error_of(const std::string& text) {
  try {
    parse_layers(text);
  } catch (const shardprop::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("parse_layers reads the issue's example as the expected stack", "[spec]") {
  const Layers layers = parse_layers("dense(256) bn relu dense(128) tanh dense(10)");
  const Layers expected{DenseSpec{256},
                        BatchNormSpec{},
                        ActivationSpec{Activation::relu},
                        DenseSpec{128},
                        ActivationSpec{Activation::tanh},
                        DenseSpec{10}};
  CAPTURE(format_layers(layers));
  CHECK(same_layers(layers, expected));
  CHECK(format_layers(layers) == "dense(256) bn relu dense(128) tanh dense(10)");
}

TEST_CASE("parse_layers reads every valid form", "[spec]") {
  SECTION("each layer kind, with the canonical text it formats to") {
    const auto [text, expected, canonical] = GENERATE(table<std::string, Layers, std::string>({
        {"dense(1)", {DenseSpec{1}}, "dense(1)"},
        {"dense(2147483647)", {DenseSpec{2147483647}}, "dense(2147483647)"},
        {"dense( 256 )", {DenseSpec{256}}, "dense(256)"},
        {"dense (8)", {DenseSpec{8}}, "dense(8)"},
        {"dense(010)", {DenseSpec{10}}, "dense(10)"},
        {"bn", {BatchNormSpec{}}, "bn"},
        {"batchnorm", {BatchNormSpec{}}, "bn"},
        {"bn(eps=1e-3)", {BatchNormSpec{1e-3f, 0.1f}}, "bn(eps=0.001)"},
        {"bn(momentum=0.01)", {BatchNormSpec{1e-5f, 0.01f}}, "bn(momentum=0.01)"},
        {"bn(eps=1e-3, momentum=0.01)",
         {BatchNormSpec{1e-3f, 0.01f}},
         "bn(eps=0.001, momentum=0.01)"},
        {"bn(momentum=0.01,eps=1e-3)",
         {BatchNormSpec{1e-3f, 0.01f}},
         "bn(eps=0.001, momentum=0.01)"},
        {"batchnorm( eps = 2e-5 , momentum = 1 )",
         {BatchNormSpec{2e-5f, 1.0f}},
         "bn(eps=2e-05, momentum=1)"},
        {"bn(eps=1e-5, momentum=0.1)", {BatchNormSpec{}}, "bn"},
        {"bn(momentum=0)", {BatchNormSpec{1e-5f, 0.0f}}, "bn(momentum=0)"},
        {"relu", {ActivationSpec{Activation::relu}}, "relu"},
        {"tanh", {ActivationSpec{Activation::tanh}}, "tanh"},
        {"sigmoid", {ActivationSpec{Activation::sigmoid}}, "sigmoid"},
        {"identity", {ActivationSpec{Activation::identity}}, "identity"},
        {"leaky_relu", {ActivationSpec{Activation::leaky_relu}}, "leaky_relu"},
        {"leaky_relu(0.01)", {ActivationSpec{Activation::leaky_relu, 0.01f}}, "leaky_relu"},
        {"leaky_relu( 0.2 )", {ActivationSpec{Activation::leaky_relu, 0.2f}}, "leaky_relu(0.2)"},
        {"leaky_relu(0)", {ActivationSpec{Activation::leaky_relu, 0.0f}}, "leaky_relu(0)"},
        {"dropout(0)", {DropoutSpec{0.0f}}, "dropout(0)"},
        {"dropout(-0)", {DropoutSpec{0.0f}}, "dropout(0)"},
        {"dropout(0.2)", {DropoutSpec{0.2f}}, "dropout(0.2)"},
        {"dropout( .5 )", {DropoutSpec{0.5f}}, "dropout(0.5)"},
        {"dropout(0.999)", {DropoutSpec{0.999f}}, "dropout(0.999)"},
        {"dropout(25e-2)", {DropoutSpec{0.25f}}, "dropout(0.25)"},
    }));
    CAPTURE(text);
    const Layers layers = parse_layers(text);
    CAPTURE(format_layers(layers));
    CHECK(same_layers(layers, expected));
    CHECK(format_layers(layers) == canonical);
  }
  SECTION("layers separated by spaces, tabs, newlines and single commas") {
    const std::string text =
        GENERATE(as<std::string>{}, "dense(4) relu dense(2)", "dense(4),relu,dense(2)",
                 "dense(4) , relu ,dense(2)", "  dense(4)\n\trelu  dense(2)  ",
                 "dense(4),\nrelu,\r\ndense(2)", "dense(4)    relu\tdense(2)");
    CAPTURE(text);
    const Layers layers = parse_layers(text);
    CHECK(format_layers(layers) == "dense(4) relu dense(2)");
  }
  SECTION("parse_layers leaves whole-stack rules to the Model constructor") {
    CHECK(format_layers(parse_layers("relu")) == "relu");
    CHECK(format_layers(parse_layers("dropout(0.5) bn bn")) == "dropout(0.5) bn bn");
  }
}

TEST_CASE("format_layers writes the canonical form", "[spec]") {
  const Layers layers{DenseSpec{256}, BatchNormSpec{}, ActivationSpec{Activation::relu},
                      DropoutSpec{0.2f}, DenseSpec{10}};
  CHECK(format_layers(layers) == "dense(256) bn relu dropout(0.2) dense(10)");
  CHECK(format_layers(Layers{}).empty());
  CHECK(format_layers(Layers{BatchNormSpec{1e-3f, 0.01f}}) == "bn(eps=0.001, momentum=0.01)");
  CHECK(format_layers(Layers{BatchNormSpec{1e-5f, 0.5f}}) == "bn(momentum=0.5)");
  // The float nearest to 1/3 needs nine significant digits to read back.
  CHECK(format_layers(Layers{DropoutSpec{1.0f / 3.0f}}) == "dropout(0.33333334)");
}

TEST_CASE("parse_layers reads format_layers' text back to the same layers", "[spec]") {
  SECTION("chosen stacks") {
    const std::vector<Layers> stacks{
        {DenseSpec{1}},
        {DenseSpec{2147483647}, ActivationSpec{Activation::identity}},
        {BatchNormSpec{1e-12f, 1.0f}, DropoutSpec{0.0f}, DropoutSpec{0.99999994f}},
        {BatchNormSpec{3.4e38f, 0.0f}, BatchNormSpec{1.4e-45f, 1e-30f}},
        {DenseSpec{7}, ActivationSpec{Activation::sigmoid}, ActivationSpec{Activation::tanh},
         ActivationSpec{Activation::relu}},
        {ActivationSpec{Activation::leaky_relu, 1.0f / 3.0f}, DenseSpec{2},
         ActivationSpec{Activation::leaky_relu, 1e-30f}},
    };
    for (const Layers& layers : stacks) {
      const std::string text = format_layers(layers);
      CAPTURE(text);
      CHECK(same_layers(parse_layers(text), layers));
    }
  }
  SECTION("random stacks from a seeded generator") {
    std::mt19937_64 random(20240611);
    std::uniform_int_distribution<int> kind(0, 3);
    std::uniform_int_distribution<int> units(1, 100000);
    std::uniform_int_distribution<int> activation(0, 3);
    std::uniform_int_distribution<int> length(1, 12);
    std::uniform_real_distribution<float> unit_interval(0.0f, 1.0f);
    std::uniform_real_distribution<float> exponent(-10.0f, 0.0f);
    for (int trial = 0; trial < 500; ++trial) {
      Layers layers;
      const int count = length(random);
      for (int i = 0; i < count; ++i) {
        switch (kind(random)) {
          case 0:
            layers.emplace_back(DenseSpec{units(random)});
            break;
          case 1:
            layers.emplace_back(ActivationSpec{static_cast<Activation>(activation(random))});
            break;
          case 2: {
            BatchNormSpec bn;
            if (random() % 2 == 0) bn.epsilon = std::pow(10.0f, exponent(random));
            if (random() % 2 == 0) bn.momentum = unit_interval(random);
            layers.emplace_back(bn);
            break;
          }
          default: {
            const float rate = unit_interval(random);
            layers.emplace_back(DropoutSpec{rate < 1.0f ? rate : 0.5f});
            break;
          }
        }
      }
      const std::string text = format_layers(layers);
      CAPTURE(trial, text);
      REQUIRE(same_layers(parse_layers(text), layers));
    }
  }
}

TEST_CASE("parse_layers names the column, the token and what was expected", "[spec]") {
  const auto [text, column, problem] = GENERATE(table<std::string, int, std::string>({
      {"", 1, "empty text (expected layers such as 'dense(64) relu dense(10)')"},
      {" \t\n", 1, "empty text"},
      {", relu", 1, "',': expected a layer before ','"},
      {"relu,", 5, "',': expected a layer after ','"},
      {"relu , ", 6, "',': expected a layer after ','"},
      {"relu,,tanh", 6, "',': expected a layer between two commas"},
      {"dense(256), dense(0)", 13, "'dense(0)': a dense layer needs a positive width"},
      {"dense(-3)", 1, "'dense(-3)': a dense layer needs a positive width"},
      {"dense(-99999999999)", 1, "a dense layer needs a positive width"},
      {"relu rleu", 6,
       "unknown layer 'rleu' (expected dense(N), bn, relu, leaky_relu, tanh, sigmoid, identity or "
       "dropout(P))"},
      {"leaky_relu(-0.1)", 1,
       "'leaky_relu(-0.1)': the negative slope must be >= 0 (leaky_relu(A), e.g. leaky_relu(0.1))"},
      {"leaky_relu(a)", 1, "'leaky_relu(a)': the negative slope 'a' is not a number"},
      {"leaky_relu()", 1, "'leaky_relu()': the negative slope is missing"},
      {"Leaky_ReLU", 1, "unknown layer 'Leaky_ReLU' (layer names are lowercase: 'leaky_relu')"},
      {"Dense(10)", 1, "unknown layer 'Dense' (layer names are lowercase: 'dense')"},
      {"BN", 1, "unknown layer 'BN' (layer names are lowercase: 'bn')"},
      {"64 relu", 1, "unknown layer '64'"},
      {"dense(10) = relu", 11, "unexpected '=' (expected dense(N)"},
      {"dense(10)\trleu", 11, "unknown layer 'rleu'"},
      {"dense(10x)", 1,
       "'dense(10x)': the width '10x' is not an integer (expected dense(N) with N a positive "
       "integer)"},
      {"dense(10 20)", 1, "the width '10 20' is not an integer"},
      {"dense(1.5)", 1, "the width '1.5' is not an integer"},
      {"dense(+5)", 1, "the width '+5' is not an integer"},
      {"dense(99999999999)", 1,
       "'dense(99999999999)': the width 99999999999 is too large (at most 2147483647)"},
      {"dense", 1, "'dense': a dense layer needs its width: dense(N)"},
      {"relu dense()", 6, "'dense()': a dense layer needs its width: dense(N)"},
      {"dense(10", 1,
       "'dense(10': unbalanced parenthesis: the '(' at column 6 is never closed (expected ')')"},
      {"relu bn(eps=1e-3", 6, "unbalanced parenthesis: the '(' at column 8 is never closed"},
      {"relu dense(10))", 15, "')': unbalanced parenthesis: no '(' to close"},
      {") relu", 1, "')': unbalanced parenthesis: no '(' to close"},
      {"dense((10))", 1, "'dense((': nested '('"},
      {"dense(10)relu", 10, "'relu': expected a space or comma before it"},
      {"relu(2)", 1, "'relu(2)': relu takes no arguments"},
      {"tanh()", 1, "'tanh()': tanh takes no arguments"},
      {"dropout", 1, "'dropout': dropout needs its rate: dropout(P), 0 <= P < 1"},
      {"dropout()", 1, "'dropout()': the dropout rate is missing"},
      {"dropout(1)", 1, "'dropout(1)': the dropout rate must be in [0, 1)"},
      {"dropout(-0.1)", 1, "the dropout rate must be in [0, 1)"},
      {"dropout(0.5.1)", 1, "'dropout(0.5.1)': the dropout rate '0.5.1' is not a number"},
      {"dropout(nan)", 1, "the dropout rate 'nan' is not a number"},
      {"dropout(inf)", 1, "the dropout rate 'inf' is not a number"},
      {"dropout(1e99)", 1, "the dropout rate 1e99 is out of range for a float"},
      {"bn(eps=0)", 1, "'bn(eps=0)': eps must be positive"},
      {"bn(eps=1e-60)", 1, "eps 1e-60 is out of range for a float"},
      {"bn(eps=)", 1, "'bn(eps=)': eps is missing"},
      {"bn(momentum=2)", 1, "'bn(momentum=2)': momentum must be in [0, 1]"},
      {"bn(momentum=x)", 1, "momentum 'x' is not a number"},
      {"bn(eps=1e-3, eps=1e-4)", 1, "eps is given twice"},
      {"bn(momentum=0.1, momentum=0.2)", 1, "momentum is given twice"},
      {"bn(epsilon=1e-3)", 1, "unknown batch-norm argument 'epsilon' (expected eps or momentum)"},
      {"bn(eps)", 1, "'bn(eps)': expected eps=E or momentum=M, found 'eps'"},
      {"bn()", 1, "'bn()': expected eps=E or momentum=M"},
      {"bn(eps=1e-3,)", 1, "expected eps=E or momentum=M"},
      {"bn(eps=1e-3 momentum=0.1)", 1, "eps '1e-3 momentum=0.1' is not a number"},
  }));
  CAPTURE(text);
  const std::string message = error_of(text);
  CHECK_THAT(message, StartsWith("model spec, column " + std::to_string(column) + ": "));
  CHECK_THAT(message, Contains(problem));
}
