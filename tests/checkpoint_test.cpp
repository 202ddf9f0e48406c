// safetensors weights: bitwise round trips, PyTorch nn.Sequential names and shapes, metadata,
// a clear Error for each kind of malformed file (built byte by byte here) with the model left
// unchanged, and atomic replacement on save.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "shardprop/checkpoint.hpp"
#include "shardprop/error.hpp"
#include "shardprop/model.hpp"
#include "shardprop/version.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::Activation;
using shardprop::ActivationSpec;
using shardprop::DenseSpec;
using shardprop::Loss;
using shardprop::Model;
using shardprop::ModelSpec;
using shardprop::TensorInfo;
using shardprop::test::directory_entries;
using shardprop::test::read_bytes;
using shardprop::test::TempDir;
using shardprop::test::thrown_message;
using shardprop::test::write_bytes;
using Shape = std::vector<std::int64_t>;

// 3 inputs → dense(4) → relu → dense(2): tensors 0.weight [4,3], 0.bias [4], 2.weight [2,4],
// 2.bias [2].
ModelSpec small_spec() {
  ModelSpec spec;
  spec.inputs = 3;
  spec.layers = {DenseSpec{4}, ActivationSpec{Activation::relu}, DenseSpec{2}};
  spec.loss = Loss::mse;
  return spec;
}

// Every parameter distinct and non-zero (biases too, which initialize() leaves at zero), with a
// few values whose bits a lossy path would change: −0, a subnormal, the largest float.
void fill_distinct(Model& model, float scale) {
  const std::span<float> params = model.parameters();
  int counter = 1;
  for (const TensorInfo& t : model.tensors()) {
    for (std::size_t i = 0; i < t.size; ++i) {
      params[t.offset + i] =
          scale * static_cast<float>(counter) / 7.0f * (counter % 2 ? 1.0f : -1.0f);
      ++counter;
    }
  }
  const TensorInfo& first = model.tensors().front();
  params[first.offset + 0] = -0.0f;
  params[first.offset + 1] = std::numeric_limits<float>::denorm_min();
  params[first.offset + 2] = std::numeric_limits<float>::max();
}

bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

std::vector<float> copy_of(std::span<const float> values) { return {values.begin(), values.end()}; }

std::string header_of(const std::vector<char>& file) {
  REQUIRE(file.size() >= 8);
  std::uint64_t length = 0;
  std::memcpy(&length, file.data(), 8);  // little-endian host (the library asserts it too)
  REQUIRE(length <= file.size() - 8);
  return {file.begin() + 8, file.begin() + 8 + static_cast<std::ptrdiff_t>(length)};
}

// One tensor entry of a header, as its dtype, shape and data offsets. The entries hold only
// strings and arrays, so the text between the entry's braces has no '}'.
struct HeaderEntry {
  std::string dtype;
  std::string shape;  // e.g. "4,3"
  std::uint64_t begin = 0, end = 0;
};

HeaderEntry header_entry(const std::string& header, const std::string& name) {
  const std::string quoted = "\"" + name + "\":{";
  const std::size_t at = header.find(quoted);
  REQUIRE(at != std::string::npos);
  const std::size_t open = at + quoted.size();
  const std::string body = header.substr(open, header.find('}', open) - open);
  std::smatch m;
  HeaderEntry entry;
  REQUIRE(std::regex_search(body, m, std::regex(R"re("dtype":"([^"]*)")re")));
  entry.dtype = m[1];
  REQUIRE(std::regex_search(body, m, std::regex(R"re("shape":\[([0-9,]*)\])re")));
  entry.shape = m[1];
  REQUIRE(std::regex_search(body, m, std::regex(R"re("data_offsets":\[([0-9]+),([0-9]+)\])re")));
  entry.begin = std::stoull(m[1]);
  entry.end = std::stoull(m[2]);
  return entry;
}

std::string shape_text(const Shape& shape) {
  std::string text;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(shape[i]);
  }
  return text;
}

// ---- Building safetensors files by hand ----

struct FileTensor {
  std::string name;
  std::string dtype = "F32";
  std::string shape;  // JSON array contents, e.g. "4,3"
  std::uint64_t begin = 0, end = 0;
};

// The layout a correct writer produces for the model: every tensor as F32, back to back.
std::vector<FileTensor> layout_of(const Model& model) {
  std::vector<FileTensor> tensors;
  std::uint64_t offset = 0;
  for (const TensorInfo& t : model.tensors()) {
    tensors.push_back({t.name, "F32", shape_text(t.shape), offset, offset + t.size * 4});
    offset += t.size * 4;
  }
  return tensors;
}

std::vector<char> data_of(const Model& model) {
  std::vector<char> data;
  for (const TensorInfo& t : model.tensors()) {
    const char* begin = reinterpret_cast<const char*>(model.parameters().data() + t.offset);
    data.insert(data.end(), begin, begin + t.size * sizeof(float));
  }
  return data;
}

std::string header_json(const std::vector<FileTensor>& tensors) {
  std::string json = R"({"__metadata__":{"format":"pt"})";
  for (const FileTensor& t : tensors) {
    json += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[" + t.shape +
            "],\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
  }
  return json + "}";
}

// [u64 little-endian header length][header][data].
std::vector<char> safetensors_bytes(const std::string& header, const std::vector<char>& data,
                                    std::uint64_t header_length) {
  std::vector<char> bytes(8 + header.size() + data.size());
  for (std::size_t i = 0; i < 8; ++i) {
    bytes[i] = static_cast<char>((header_length >> (8 * i)) & 0xff);
  }
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  std::copy(data.begin(), data.end(),
            bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header.size()));
  return bytes;
}

std::vector<char> safetensors_bytes(const std::string& header, const std::vector<char>& data) {
  return safetensors_bytes(header, data, header.size());
}

FileTensor& find(std::vector<FileTensor>& tensors, const std::string& name) {
  for (FileTensor& t : tensors) {
    if (t.name == name) return t;
  }
  throw std::logic_error("test bug: no tensor " + name);
}

void put_float(std::vector<char>& data, std::uint64_t byte_offset, float value) {
  std::memcpy(data.data() + byte_offset, &value, sizeof(float));
}

}  // namespace

TEST_CASE("saving and loading safetensors round-trips every parameter bitwise", "[checkpoint]") {
  TempDir dir;
  const auto [description, spec] = GENERATE(table<std::string, ModelSpec>({
      {"dense, relu, dense", small_spec()},
      {"mlp 5-7-3-3 tanh xent",
       ModelSpec::mlp(5, std::vector<int>{7, 3}, 3, Activation::tanh, Loss::xent)},
      {"a single dense layer",
       ModelSpec::mlp(17, std::vector<int>{}, 1, Activation::relu, Loss::bce)},
  }));
  CAPTURE(description);
  Model saved(spec);
  fill_distinct(saved, 1.0f);
  const auto path = dir / "model.safetensors";
  shardprop::save_safetensors(saved, path);

  Model loaded(spec);  // parameters start at zero
  shardprop::load_safetensors(loaded, path);
  for (const TensorInfo& t : saved.tensors()) {
    CAPTURE(t.name);
    CHECK(same_bits(saved.parameters().subspan(t.offset, t.size),
                    loaded.parameters().subspan(t.offset, t.size)));
  }
  CHECK(same_bits(saved.parameters(), loaded.parameters()));

  SECTION("loading over a model that already has weights replaces all of them") {
    Model other(spec);
    other.initialize(99);
    shardprop::load_safetensors(other, path);
    CHECK(same_bits(saved.parameters(), other.parameters()));
  }
  SECTION("saving the loaded model again gives the same bytes") {
    shardprop::save_safetensors(loaded, dir / "again.safetensors");
    CHECK(read_bytes(dir / "again.safetensors") == read_bytes(path));
  }
}

TEST_CASE("tensor names and shapes follow PyTorch nn.Sequential's state_dict", "[checkpoint]") {
  TempDir dir;
  ModelSpec activation_first;
  activation_first.inputs = 4;
  activation_first.layers = {ActivationSpec{Activation::sigmoid}, DenseSpec{2}};
  ModelSpec two_dense;
  two_dense.inputs = 2;
  two_dense.layers = {DenseSpec{3}, DenseSpec{1}};
  using Names = std::vector<std::pair<std::string, Shape>>;
  const auto [description, spec, expected] = GENERATE_COPY(table<std::string, ModelSpec, Names>({
      {"dense, relu, dense: activations take an index but hold no tensors",
       small_spec(),
       {{"0.weight", {4, 3}}, {"0.bias", {4}}, {"2.weight", {2, 4}}, {"2.bias", {2}}}},
      {"mlp 2-5-6-3",
       ModelSpec::mlp(2, std::vector<int>{5, 6}, 3, Activation::tanh, Loss::xent),
       {{"0.weight", {5, 2}},
        {"0.bias", {5}},
        {"2.weight", {6, 5}},
        {"2.bias", {6}},
        {"4.weight", {3, 6}},
        {"4.bias", {3}}}},
      {"two dense layers in a row",
       two_dense,
       {{"0.weight", {3, 2}}, {"0.bias", {3}}, {"1.weight", {1, 3}}, {"1.bias", {1}}}},
      {"an activation before the first dense layer",
       activation_first,
       {{"1.weight", {2, 4}}, {"1.bias", {2}}}},
  }));
  CAPTURE(description);
  Model model(spec);
  fill_distinct(model, 0.5f);

  SECTION("the model's tensors") {
    REQUIRE(model.tensors().size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      CHECK(model.tensors()[i].name == expected[i].first);
      CHECK(model.tensors()[i].shape == expected[i].second);
    }
  }
  SECTION(
      "the file's header lists exactly those tensors as F32 and their bytes are the weights "
      "in [out, in] row-major order, back to back") {
    shardprop::save_safetensors(model, dir / "m.safetensors");
    const std::vector<char> file = read_bytes(dir / "m.safetensors");
    const std::string header = header_of(file);
    const std::size_t data_begin = 8 + header.size();
    CHECK(data_begin % 8 == 0);  // the header is padded so the data is 8-byte aligned
    std::size_t entries = 0;
    for (std::size_t at = header.find("\"dtype\""); at != std::string::npos;
         at = header.find("\"dtype\"", at + 1)) {
      ++entries;
    }
    CHECK(entries == expected.size());
    std::uint64_t next = 0;
    for (const TensorInfo& t : model.tensors()) {
      CAPTURE(t.name);
      const HeaderEntry entry = header_entry(header, t.name);
      CHECK(entry.dtype == "F32");
      CHECK(entry.shape == shape_text(t.shape));
      CHECK(entry.begin == next);
      CHECK(entry.end == entry.begin + t.size * 4);
      next = entry.end;
      REQUIRE(data_begin + entry.end <= file.size());
      // W[o][i] of the model is element o·in + i of the tensor, as in torch.
      CHECK(std::memcmp(file.data() + data_begin + entry.begin,
                        model.parameters().data() + t.offset, t.size * sizeof(float)) == 0);
    }
    CHECK(data_begin + next == file.size());
  }
}

TEST_CASE("metadata round-trips and always records the model spec", "[checkpoint]") {
  TempDir dir;
  Model model(small_spec());
  const std::map<std::string, std::string> metadata{
      {"user.note", "hello"},
      {"user.tricky \"key\"", "line one\nline two, \"quoted\", tab\t, ü, {\"json\": [1]}"},
      {"user.empty", ""},
  };
  shardprop::save_safetensors(model, dir / "m.safetensors", metadata);
  const std::map<std::string, std::string> read =
      shardprop::read_safetensors_metadata(dir / "m.safetensors");
  for (const auto& [key, value] : metadata) {
    CAPTURE(key);
    REQUIRE(read.count(key) == 1);
    CHECK(read.at(key) == value);
  }
  REQUIRE(read.count("shardprop.model") == 1);
  const std::string spec_json =
      R"json({"inputs":3,"layers":"dense(4) relu dense(2)","loss":"mse"})json";
  CHECK(read.at("shardprop.model") == spec_json);
  CHECK(read.at("shardprop.version") == shardprop::version());
  CHECK(read.at("format") == "pt");
  CHECK_THAT(read.at("shardprop.checksum"), Catch::Matchers::StartsWith("crc32:"));
  CHECK(read.size() == metadata.size() + 4);
}

TEST_CASE("float settings in the model metadata are written as their shortest decimal",
          "[checkpoint]") {
  // Regression: "epsilon":9.999999747378752e-06, the float's exact value as a double.
  TempDir dir;
  ModelSpec spec;
  spec.inputs = 3;
  spec.loss = Loss::mse;
  spec.layers = shardprop::parse_layers("dense(4) bn relu dropout(0.3) dense(2)");
  Model model(spec);
  model.initialize(1);
  shardprop::save_safetensors(model, dir / "m.safetensors");
  const std::string text =
      shardprop::read_safetensors_metadata(dir / "m.safetensors").at("shardprop.model");
  CHECK_THAT(text,
             Catch::Matchers::Contains(R"json("dense(4) bn relu dropout(0.3) dense(2)")json"));
  // And they read back as the same floats.
  const Model again = shardprop::load_model(dir / "m.safetensors");
  CHECK(shardprop::format_layers(again.spec().layers) == shardprop::format_layers(spec.layers));
  const auto& bn = std::get<shardprop::BatchNormSpec>(again.spec().layers[1]);
  CHECK(bn.epsilon == 1e-5f);
  CHECK(bn.momentum == 0.1f);
  CHECK(std::get<shardprop::DropoutSpec>(again.spec().layers[3]).rate == 0.3f);
}

TEST_CASE("metadata that is not UTF-8 is an Error and nothing is written", "[checkpoint]") {
  TempDir dir;
  const Model model(small_spec());
  CHECK_THROWS_AS(shardprop::save_safetensors(model, dir / "m.safetensors",
                                              {{"user.name", std::string("caf\xe9")}}),
                  shardprop::Error);
  CHECK_FALSE(std::filesystem::exists(dir / "m.safetensors"));
}

TEST_CASE("a hand-built safetensors file in the documented layout loads", "[checkpoint]") {
  // Checks the file builder that the malformed-file tests below mutate.
  TempDir dir;
  Model source(small_spec());
  fill_distinct(source, 2.0f);
  write_bytes(dir / "m.safetensors",
              safetensors_bytes(header_json(layout_of(source)), data_of(source)));
  Model model(small_spec());
  shardprop::load_safetensors(model, dir / "m.safetensors");
  CHECK(same_bits(model.parameters(), source.parameters()));
  CHECK(shardprop::read_safetensors_metadata(dir / "m.safetensors") ==
        std::map<std::string, std::string>{{"format", "pt"}});
}

TEST_CASE(
    "a malformed safetensors file gives an Error naming the problem and leaves the model "
    "unchanged",
    "[checkpoint]") {
  TempDir dir;
  const auto path = dir / "bad.safetensors";
  const std::string file = path.string();
  Model source(small_spec());
  fill_distinct(source, 3.0f);
  std::vector<FileTensor> tensors = layout_of(source);
  std::vector<char> data = data_of(source);

  Model model(small_spec());
  model.initialize(5);
  const std::vector<float> before = copy_of(model.parameters());

  // Writes `bytes`, expects load (and, for file-level problems, metadata reading) to throw an
  // Error whose message contains the file name and every fragment, and the model unchanged.
  auto expect_error = [&](const std::vector<char>& bytes, const std::vector<std::string>& fragments,
                          bool metadata_fails_too) {
    write_bytes(path, bytes);
    const std::string message =
        thrown_message<shardprop::Error>([&] { shardprop::load_safetensors(model, path); });
    CAPTURE(message);
    CHECK_THAT(message, Contains(file));
    for (const std::string& fragment : fragments) CHECK_THAT(message, Contains(fragment));
    CHECK(same_bits(model.parameters(), before));
    if (metadata_fails_too) {
      CHECK_THROWS_AS(shardprop::read_safetensors_metadata(path), shardprop::Error);
    }
  };
  auto expect_tensor_error = [&](const std::vector<std::string>& fragments,
                                 bool metadata_fails_too) {
    expect_error(safetensors_bytes(header_json(tensors), data), fragments, metadata_fails_too);
  };

  SECTION("shorter than the 8-byte header length") {
    const std::size_t size = GENERATE(0u, 1u, 7u);
    CAPTURE(size);
    expect_error(std::vector<char>(size, '\0'), {"truncated", std::to_string(size) + " bytes"},
                 true);
  }
  SECTION("a header length larger than the file") {
    const std::string header = header_json(tensors);
    const std::uint64_t length =
        GENERATE_COPY(std::uint64_t{header.size() + data.size() + 1}, std::uint64_t{1} << 40,
                      std::numeric_limits<std::uint64_t>::max());
    CAPTURE(length);
    expect_error(safetensors_bytes(header, data, length),
                 {"header length " + std::to_string(length), "exceeds the file"}, true);
  }
  SECTION("a header that is not JSON") {
    const std::string header =
        GENERATE(as<std::string>{}, "{\"0.weight\": {", "not json", "", "{\"a\":1} trailing");
    CAPTURE(header);
    expect_error(safetensors_bytes(header, data), {"header is not valid JSON"}, true);
  }
  SECTION("a header that is JSON but not an object") {
    const std::string header = GENERATE(as<std::string>{}, "[1,2,3]", "\"text\"", "42", "null");
    CAPTURE(header);
    expect_error(safetensors_bytes(header, data), {"header is not a JSON object"}, true);
  }
  SECTION("a tensor of the model is missing") {
    const std::string name = GENERATE(as<std::string>{}, "0.weight", "2.bias");
    CAPTURE(name);
    std::erase_if(tensors, [&](const FileTensor& t) { return t.name == name; });
    expect_tensor_error({"tensor '" + name + "' is missing"}, false);
  }
  SECTION("a tensor the model does not have") {
    const std::string name = GENERATE(as<std::string>{}, "4.weight", "1.weight", "0.running_mean");
    CAPTURE(name);
    const std::uint64_t end = data.size();
    tensors.push_back({name, "F32", "1", end, end + 4});
    data.resize(data.size() + 4, '\0');
    expect_tensor_error({"tensor '" + name + "' is not part of this model"}, false);
  }
  SECTION("a tensor of the wrong dtype") {
    const std::string dtype = GENERATE(as<std::string>{}, "I32", "F16", "F64");
    CAPTURE(dtype);
    // Keep the byte size consistent with the dtype so that the dtype itself is the problem.
    FileTensor& bias = find(tensors, "2.bias");
    const std::uint64_t bytes = dtype == "F16" ? 4 : dtype == "F64" ? 16 : 8;
    bias.dtype = dtype;
    bias.end = bias.begin + bytes;
    data.resize(bias.end, '\0');
    expect_tensor_error({"tensor '2.bias'", "dtype " + dtype, "F32"}, false);
  }
  SECTION("an unknown dtype") {
    find(tensors, "0.bias").dtype = "F33";
    expect_tensor_error({"tensor '0.bias'", "unknown dtype 'F33'"}, true);
  }
  SECTION("a tensor of the wrong shape with the right number of elements") {
    const std::string shape = GENERATE(as<std::string>{}, "3,4", "12", "1,4,3", "4,3,1");
    CAPTURE(shape);
    find(tensors, "0.weight").shape = shape;
    expect_tensor_error({"tensor '0.weight'", "shape [" + shape + "]", "[4,3]"}, false);
  }
  SECTION("data_offsets outside the data section") {
    FileTensor& last = find(tensors, "2.bias");
    SECTION("past the end") {
      last.begin += 4;
      last.end += 4;
    }
    SECTION("far past the end") {
      last.begin = std::uint64_t{1} << 62;
      last.end = last.begin + 8;
    }
    SECTION("begin after end") { last.begin = last.end + 8; }
    expect_tensor_error({"tensor '2.bias'", "data_offsets", "outside"}, true);
  }
  SECTION("data_offsets whose span does not match the shape's size") {
    FileTensor& bias = find(tensors, "0.bias");
    SECTION("too short") { bias.end -= 4; }
    SECTION("too long") { bias.end += 4; }
    SECTION("empty") { bias.end = bias.begin; }
    expect_tensor_error({"tensor '0.bias'", "do not match shape"}, true);
  }
  SECTION("tensors whose data overlap") {
    // 2.weight moved 4 bytes back into 0.bias; the file still has room for both.
    FileTensor& weight = find(tensors, "2.weight");
    weight.begin -= 4;
    weight.end -= 4;
    expect_tensor_error({"tensors '0.bias' and '2.weight' overlap"}, true);
  }
  SECTION("a non-finite value, even in the last tensor after the others validated") {
    const auto [name, element, value] = GENERATE(table<std::string, std::uint64_t, float>({
        {"0.weight", 5, std::numeric_limits<float>::quiet_NaN()},
        {"0.bias", 0, std::numeric_limits<float>::infinity()},
        {"2.bias", 1, -std::numeric_limits<float>::infinity()},
        {"2.bias", 1, std::numeric_limits<float>::quiet_NaN()},
    }));
    CAPTURE(name, element);
    put_float(data, find(tensors, name).begin + element * 4, value);
    expect_tensor_error(
        {"tensor '" + name + "'", "element " + std::to_string(element), "not finite"}, false);
  }
  SECTION("a later tensor has the wrong shape after earlier ones were fine") {
    find(tensors, "2.weight").shape = "4,2";
    expect_tensor_error({"tensor '2.weight'", "shape [4,2]"}, false);
  }
  SECTION("a tensor entry without data_offsets") {
    std::string header = header_json(tensors);
    const std::string offsets = ",\"data_offsets\":[0,48]";
    REQUIRE(header.find(offsets) != std::string::npos);
    header.erase(header.find(offsets), offsets.size());
    expect_error(safetensors_bytes(header, data), {"tensor '0.weight'", "data_offsets"}, true);
  }
  SECTION("metadata that is not a string") {
    std::string header = header_json(tensors);
    header.replace(header.find(R"("format":"pt")"), 13, R"("format":1.0)");
    expect_error(safetensors_bytes(header, data), {"metadata 'format' is not a string"}, true);
  }
  SECTION("a file that does not exist") {
    CHECK_THAT(thrown_message<shardprop::Error>(
                   [&] { shardprop::load_safetensors(model, dir / "missing.safetensors"); }),
               Contains((dir / "missing.safetensors").string() + ": cannot open"));
    CHECK(same_bits(model.parameters(), before));
  }
}

TEST_CASE("saving replaces an existing file atomically and leaves no temporary files",
          "[checkpoint]") {
  TempDir dir;
  TempDir reference_dir;
  Model model(small_spec());
  fill_distinct(model, 1.0f);
  shardprop::save_safetensors(model, reference_dir / "model.safetensors");
  const std::vector<char> expected = read_bytes(reference_dir / "model.safetensors");
  const auto path = dir / "model.safetensors";

  SECTION("over a larger file: nothing of the old content survives") {
    write_bytes(path, std::vector<char>(expected.size() * 10 + 12345, 'x'));
    shardprop::save_safetensors(model, path);
    CHECK(read_bytes(path) == expected);
    CHECK(directory_entries(dir.path()) == std::vector<std::string>{"model.safetensors"});
  }
  SECTION("over a smaller file, twice in a row") {
    write_bytes(path, {'o', 'l', 'd'});
    shardprop::save_safetensors(model, path);
    shardprop::save_safetensors(model, path);
    CHECK(read_bytes(path) == expected);
    CHECK(directory_entries(dir.path()) == std::vector<std::string>{"model.safetensors"});
  }
  SECTION("the new file is readable by others (0644), like a normally created file") {
    shardprop::save_safetensors(model, path);
    const auto permissions = std::filesystem::status(path).permissions();
    CHECK((permissions & std::filesystem::perms::owner_read) != std::filesystem::perms::none);
    CHECK((permissions & std::filesystem::perms::others_read) != std::filesystem::perms::none);
  }
  SECTION("into a directory that does not exist: Error naming the path, nothing created") {
    const auto missing = dir / "no-such-directory" / "model.safetensors";
    CHECK_THAT(
        thrown_message<shardprop::Error>([&] { shardprop::save_safetensors(model, missing); }),
        Contains(missing.string()));
    CHECK_FALSE(std::filesystem::exists(dir / "no-such-directory"));
    CHECK(directory_entries(dir.path()).empty());
  }
  SECTION("onto a path that is a directory: Error, the temporary file is removed") {
    std::filesystem::create_directory(dir / "model.safetensors");
    CHECK_THAT(thrown_message<shardprop::Error>([&] { shardprop::save_safetensors(model, path); }),
               Contains(path.string()));
    CHECK(directory_entries(dir.path()) == std::vector<std::string>{"model.safetensors"});
    CHECK(std::filesystem::is_directory(path));
  }
}

TEST_CASE("load_model rebuilds the architecture from the file's metadata", "[checkpoint]") {
  TempDir dir;
  const ModelSpec spec = ModelSpec::mlp(3, std::vector<int>{5, 4}, 2, Activation::tanh, Loss::bce,
                                        /*batch_norm=*/true);
  Model model(spec);
  model.initialize(9);
  save_safetensors(model, dir / "m.st");
  const Model loaded = shardprop::load_model(dir / "m.st");
  CHECK(loaded.inputs() == 3);
  CHECK(loaded.outputs() == 2);
  CHECK(loaded.spec().loss == Loss::bce);
  REQUIRE(loaded.spec().layers.size() == spec.layers.size());
  CHECK(std::holds_alternative<shardprop::BatchNormSpec>(loaded.spec().layers[1]));
  REQUIRE(loaded.parameters().size() == model.parameters().size());
  CHECK(std::memcmp(loaded.parameters().data(), model.parameters().data(),
                    model.parameters().size_bytes()) == 0);

  SECTION("a file that does not describe its model is an error naming the file") {
    // Rewrite the metadata value so it is no model description.
    std::vector<char> bytes = read_bytes(dir / "m.st");
    const std::string needle = "shardprop.model";
    const auto at = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
    REQUIRE(at != bytes.end());
    std::copy_n("shardprop.xxxxx", needle.size(), at);
    write_bytes(dir / "anonymous.st", bytes);
    CHECK_THROWS_WITH(shardprop::load_model(dir / "anonymous.st"),
                      Contains("anonymous.st") && Contains("shardprop.model"));
  }
}

// Found while writing the checkpoint fuzz target (its input is
// tests/fuzz/corpus/checkpoint/oversized_model; libFuzzer reports it as out-of-memory): a file
// of a few KB whose metadata claimed gigabytes of weights had them allocated (and zeroed) before
// its tensors were compared with the model's, or failed with std::bad_alloc, not an Error.
TEST_CASE("a model larger than the file's tensor data is refused before it is allocated",
          "[checkpoint]") {
  TempDir dir;
  Model model(small_spec());
  model.initialize(1);
  shardprop::save_safetensors(model, dir / "m.st");
  const std::string claim = GENERATE(
      as<std::string>{}, R"json({"inputs":3,"layers":"dense(1000) dense(2)","loss":"mse"})json",
      R"json({"inputs":2147483647,"layers":"dense(2147483647) relu dense(2)","loss":"mse"})json");
  CAPTURE(claim);
  // Only the header changes, so the data and its checksum stay valid.
  const std::vector<char> bytes = read_bytes(dir / "m.st");
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  nlohmann::json header = nlohmann::json::parse(header_of(bytes));
  header["__metadata__"]["shardprop.model"] = claim;
  const std::vector<char> data(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
  write_bytes(dir / "claims.st", safetensors_bytes(header.dump(), data));
  CHECK_THROWS_WITH(shardprop::load_model(dir / "claims.st"), Contains("claims.st") &&
                                                                  Contains("shardprop.model") &&
                                                                  Contains("bytes of tensor data"));
}

// Files written before the layer stack was stored as text hold it as a JSON list; they still
// load, and the list is read as strictly as the text is.
TEST_CASE("files with the older JSON layer list still load, without trailing junk",
          "[checkpoint]") {
  TempDir dir;
  ModelSpec spec;
  spec.inputs = 3;
  spec.loss = Loss::mse;
  spec.layers = shardprop::parse_layers("dense(4) bn(eps=0.001) relu dropout(0.25) dense(2)");
  Model model(spec);
  model.initialize(5);
  shardprop::save_safetensors(model, dir / "new.st");
  // Rewrite "shardprop.model" as a writer of the older form did (header padded to its length,
  // so the data and its checksum stay).
  auto with_model_json = [&](const std::string& model_json) {
    const std::vector<char> bytes = read_bytes(dir / "new.st");
    std::uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    nlohmann::json header = nlohmann::json::parse(header_of(bytes));
    header["__metadata__"]["shardprop.model"] = model_json;
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    const std::vector<char> data(bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n), bytes.end());
    write_bytes(dir / "old.st", safetensors_bytes(text, data));
  };
  const std::string old_layers =
      R"json(["dense(4)",{"batchnorm":{"epsilon":0.001,"momentum":0.1}},"relu",)json"
      R"json({"dropout":0.25},"dense(2)"])json";
  SECTION("the older form gives the same model") {
    with_model_json(R"json({"inputs":3,"layers":)json" + old_layers + R"json(,"loss":"mse"})json");
    const Model loaded = shardprop::load_model(dir / "old.st");
    CHECK(shardprop::format_layers(loaded.spec().layers) == shardprop::format_layers(spec.layers));
    CHECK(same_bits(loaded.parameters(), model.parameters()));
  }
  SECTION("a layer name with anything after it is an error naming the file and the key") {
    const std::string junk = GENERATE(as<std::string>{}, R"("dense(4)x")", R"("dense(4) relu")",
                                      R"("dense(4")", R"("relux")", R"("bn")");
    CAPTURE(junk);
    with_model_json(R"json({"inputs":3,"layers":[)json" + junk +
                    R"json(,"relu","dense(2)"],"loss":"mse"})json");
    CHECK_THROWS_WITH(shardprop::load_model(dir / "old.st"),
                      Contains("old.st") && Contains("shardprop.model"));
  }
  SECTION("trailing junk in the text form is an error too") {
    with_model_json(R"json({"inputs":3,"layers":"dense(4) relu dense(2)x","loss":"mse"})json");
    CHECK_THROWS_WITH(shardprop::load_model(dir / "old.st"),
                      Contains("old.st") && Contains("shardprop.model") && Contains("column"));
  }
}
