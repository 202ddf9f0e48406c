// The C API (shardprop.h): it computes what the C++ API computes, bit for bit; every failure is a
// status plus a message, never an exception or a crash; handles are independent across threads.
#include "shardprop.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shardprop/checkpoint.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/model.hpp"
#include "shardprop/trainer.hpp"
#include "shardprop/version.hpp"
#include "test_util.hpp"

namespace {

using shardprop::test::TempDir;

// Rows of a 3-feature, 3-class problem: the class is the index of the largest feature.
struct Rows {
  std::int64_t rows = 0;
  std::vector<float> features;
  std::vector<float> targets;
};

Rows make_rows(std::int64_t rows, std::uint64_t seed) {
  std::mt19937_64 bits(seed);
  Rows r;
  r.rows = rows;
  for (std::int64_t i = 0; i < rows; ++i) {
    int best = 0;
    float values[3];
    for (int j = 0; j < 3; ++j) {
      values[j] = shardprop::test::uniform_pm1(bits);
      if (values[j] > values[best]) best = j;
      r.features.push_back(values[j]);
    }
    r.targets.push_back(static_cast<float>(best));
  }
  return r;
}

constexpr const char* kLayers = "dense(16) bn tanh dropout(0.1) dense(3)";

// Throws the C API's message for a failed call. Catch2's assertions are not thread-safe, so code
// that runs on threads the test starts reports failures this way, for the test thread to check.
void expect_ok(int status, const char* call) {
  if (status != SHARDPROP_OK)
    throw std::runtime_error(std::string(call) + " failed: " + shardprop_last_error());
}

// Safe to call from any thread (no Catch2 assertions).
shardprop_trainer_settings adam_settings(int threads) {
  shardprop_trainer_settings s;
  expect_ok(shardprop_trainer_settings_init(&s), "shardprop_trainer_settings_init");
  s.batch_size = 32;
  s.learning_rate = 0.01f;
  s.optimizer = SHARDPROP_OPTIMIZER_ADAM;
  s.shards = 2;
  s.threads = threads;
  return s;
}

// Owns C handles for a test's duration.
struct ModelHandle {
  shardprop_model* p = nullptr;
  ~ModelHandle() { shardprop_model_free(p); }
};
struct TrainerHandle {
  shardprop_trainer* p = nullptr;
  ~TrainerHandle() { shardprop_trainer_free(p); }
};

std::vector<float> parameters_of(const shardprop_model* model) {
  std::int64_t count = 0;
  REQUIRE(shardprop_model_parameter_count(model, &count) == SHARDPROP_OK);
  std::vector<float> values(static_cast<std::size_t>(count));
  REQUIRE(shardprop_model_copy_parameters(model, values.data(), count) == SHARDPROP_OK);
  return values;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Trains `epochs` epochs through the C API from a fresh model and returns its parameters.
// Safe to call from any thread (no Catch2 assertions).
std::vector<float> train_through_c(const Rows& data, int epochs, int threads) {
  ModelHandle model;
  expect_ok(shardprop_model_create(kLayers, 3, "xent", 5, &model.p), "shardprop_model_create");
  const shardprop_trainer_settings settings = adam_settings(threads);
  TrainerHandle trainer;
  expect_ok(shardprop_trainer_create(model.p, &settings, &trainer.p), "shardprop_trainer_create");
  for (int e = 0; e < epochs; ++e) {
    expect_ok(shardprop_trainer_train_epoch(trainer.p, data.features.data(), data.targets.data(),
                                            data.rows, 3, 1, nullptr),
              "shardprop_trainer_train_epoch");
  }
  std::int64_t count = 0;
  expect_ok(shardprop_model_parameter_count(model.p, &count), "shardprop_model_parameter_count");
  std::vector<float> values(static_cast<std::size_t>(count));
  expect_ok(shardprop_model_copy_parameters(model.p, values.data(), count),
            "shardprop_model_copy_parameters");
  return values;
}

}  // namespace

TEST_CASE("the C API trains exactly what the C++ API trains", "[c_api]") {
  const Rows data = make_rows(200, 1);

  shardprop::ModelSpec spec;
  spec.inputs = 3;
  spec.layers = shardprop::parse_layers(kLayers);
  spec.loss = shardprop::Loss::xent;
  shardprop::Model model(spec);
  model.initialize(5);
  shardprop::TrainerSettings settings;
  settings.batch_size = 32;
  settings.learning_rate = 0.01f;
  settings.optimizer = shardprop::Optimizer::adam;
  settings.shards = 2;
  shardprop::Trainer trainer(model, settings);
  shardprop::Dataset dataset;
  dataset.rows = data.rows;
  dataset.feature_count = 3;
  dataset.features = data.features;
  dataset.targets = data.targets;
  for (int e = 0; e < 3; ++e) trainer.train_epoch(dataset);
  std::vector<float> expected;  // the float tensors, packed in tensor order
  for (const shardprop::TensorInfo& tensor : model.tensors()) {
    if (tensor.role == shardprop::TensorRole::batch_counter) continue;
    const float* begin = model.parameters().data() + tensor.offset;
    expected.insert(expected.end(), begin, begin + tensor.size);
  }

  const int threads = GENERATE(0, 1, 2);
  CAPTURE(threads);
  CHECK(bitwise_equal(train_through_c(data, 3, threads), expected));
}

TEST_CASE("the C API learns, evaluates and predicts", "[c_api]") {
  const Rows train = make_rows(1000, 2);
  const Rows test = make_rows(300, 3);
  ModelHandle model;
  REQUIRE(shardprop_model_create("dense(32) relu dense(3)", 3, "xent", 1, &model.p) ==
          SHARDPROP_OK);
  shardprop_trainer_settings settings = adam_settings(2);
  TrainerHandle trainer;
  REQUIRE(shardprop_trainer_create(model.p, &settings, &trainer.p) == SHARDPROP_OK);

  SECTION("sizes") {
    int inputs = 0, outputs = 0, width = 0;
    std::int64_t count = 0;
    CHECK(shardprop_model_inputs(model.p, &inputs) == SHARDPROP_OK);
    CHECK(shardprop_model_outputs(model.p, &outputs) == SHARDPROP_OK);
    CHECK(shardprop_model_target_width(model.p, &width) == SHARDPROP_OK);
    CHECK(shardprop_model_parameter_count(model.p, &count) == SHARDPROP_OK);
    CHECK((inputs == 3 && outputs == 3 && width == 1));
    CHECK(count == 3 * 32 + 32 + 32 * 3 + 3);
  }

  SECTION("epochs, evaluation and prediction") {
    shardprop_metrics epoch{};
    for (int e = 0; e < 30; ++e) {
      REQUIRE(shardprop_trainer_train_epoch(trainer.p, train.features.data(), train.targets.data(),
                                            train.rows, 3, 1, &epoch) == SHARDPROP_OK);
    }
    CHECK(epoch.rows == train.rows);
    int epochs = 0;
    std::int64_t steps = 0;
    REQUIRE(shardprop_trainer_progress(trainer.p, &epochs, &steps) == SHARDPROP_OK);
    CHECK(epochs == 30);
    CHECK(steps == 30 * ((1000 + 31) / 32));

    shardprop_metrics metrics{};
    REQUIRE(shardprop_model_evaluate(model.p, test.features.data(), test.targets.data(), test.rows,
                                     3, 1, 2, &metrics) == SHARDPROP_OK);
    CHECK(metrics.rows == test.rows);
    CHECK(metrics.accuracy > 0.9);

    // Probabilities sum to 1; the largest is the class evaluate counts as predicted.
    std::vector<float> probabilities(static_cast<std::size_t>(test.rows) * 3);
    REQUIRE(shardprop_model_predict(model.p, test.features.data(), test.rows, 3,
                                    SHARDPROP_PREDICT_PROBABILITIES, probabilities.data(),
                                    static_cast<std::int64_t>(probabilities.size()),
                                    0) == SHARDPROP_OK);
    std::vector<float> logits(probabilities.size());
    REQUIRE(shardprop_model_predict(model.p, test.features.data(), test.rows, 3,
                                    SHARDPROP_PREDICT_RAW, logits.data(),
                                    static_cast<std::int64_t>(logits.size()), 1) == SHARDPROP_OK);
    int right = 0;
    for (std::int64_t r = 0; r < test.rows; ++r) {
      const float* p = probabilities.data() + r * 3;
      const float* z = logits.data() + r * 3;
      CHECK_THAT(p[0] + p[1] + p[2], Catch::Matchers::WithinAbs(1.0, 1e-5));
      const int by_p = static_cast<int>(std::max_element(p, p + 3) - p);
      CHECK(by_p == static_cast<int>(std::max_element(z, z + 3) - z));
      right += by_p == static_cast<int>(test.targets[static_cast<std::size_t>(r)]) ? 1 : 0;
    }
    CHECK(static_cast<double>(right) / static_cast<double>(test.rows) == Approx(metrics.accuracy));
  }

  SECTION("one step returns the minibatch's loss") {
    double loss = -1.0;
    REQUIRE(shardprop_trainer_step(trainer.p, train.features.data(), train.targets.data(), 32, 3, 1,
                                   &loss) == SHARDPROP_OK);
    CHECK(loss > 0.0);
    CHECK(shardprop_trainer_step(trainer.p, train.features.data(), train.targets.data(), 32, 3, 1,
                                 nullptr) == SHARDPROP_OK);
  }
}

TEST_CASE("a checkpoint saved through the C API resumes bitwise", "[c_api][checkpoint]") {
  TempDir dir;
  const std::string path = (dir.path() / "run.safetensors").string();
  const Rows data = make_rows(200, 4);
  const shardprop_trainer_settings settings = adam_settings(2);

  ModelHandle model;
  REQUIRE(shardprop_model_create(kLayers, 3, "xent", 5, &model.p) == SHARDPROP_OK);
  TrainerHandle trainer;
  REQUIRE(shardprop_trainer_create(model.p, &settings, &trainer.p) == SHARDPROP_OK);
  auto epoch = [&](shardprop_trainer* t) {
    REQUIRE(shardprop_trainer_train_epoch(t, data.features.data(), data.targets.data(), data.rows,
                                          3, 1, nullptr) == SHARDPROP_OK);
  };
  epoch(trainer.p);
  epoch(trainer.p);
  REQUIRE(shardprop_checkpoint_save(model.p, trainer.p, path.c_str()) == SHARDPROP_OK);
  epoch(trainer.p);
  epoch(trainer.p);

  ModelHandle resumed;
  REQUIRE(shardprop_model_load(path.c_str(), &resumed.p) == SHARDPROP_OK);
  TrainerHandle continued;
  REQUIRE(shardprop_trainer_create(resumed.p, &settings, &continued.p) == SHARDPROP_OK);
  REQUIRE(shardprop_trainer_load_state(continued.p, path.c_str()) == SHARDPROP_OK);
  int epochs = 0;
  std::int64_t steps = 0;
  REQUIRE(shardprop_trainer_progress(continued.p, &epochs, &steps) == SHARDPROP_OK);
  CHECK(epochs == 2);
  epoch(continued.p);
  epoch(continued.p);
  CHECK(bitwise_equal(parameters_of(resumed.p), parameters_of(model.p)));

  SECTION("the file is what the C++ API reads") {
    const shardprop::Model loaded = shardprop::load_model(path);
    CHECK(loaded.spec().loss == shardprop::Loss::xent);
    CHECK(shardprop::format_layers(loaded.spec().layers) ==
          shardprop::format_layers(shardprop::parse_layers(kLayers)));
  }
  SECTION("weights alone, without a trainer, load but hold no training state") {
    const std::string weights = (dir.path() / "weights.safetensors").string();
    REQUIRE(shardprop_checkpoint_save(model.p, nullptr, weights.c_str()) == SHARDPROP_OK);
    ModelHandle again;
    REQUIRE(shardprop_model_load(weights.c_str(), &again.p) == SHARDPROP_OK);
    CHECK(bitwise_equal(parameters_of(again.p), parameters_of(model.p)));
    TrainerHandle fresh;
    REQUIRE(shardprop_trainer_create(again.p, &settings, &fresh.p) == SHARDPROP_OK);
    CHECK(shardprop_trainer_load_state(fresh.p, weights.c_str()) == SHARDPROP_ERROR_FILE);
    CHECK(std::string(shardprop_last_error()).find("weights.safetensors") != std::string::npos);
  }
}

TEST_CASE("a trainer keeps its model alive after the model handle is freed", "[c_api]") {
  const Rows data = make_rows(64, 5);
  shardprop_model* model = nullptr;
  REQUIRE(shardprop_model_create("dense(4) relu dense(3)", 3, "xent", 1, &model) == SHARDPROP_OK);
  const shardprop_trainer_settings settings = adam_settings(1);
  shardprop_trainer* trainer = nullptr;
  REQUIRE(shardprop_trainer_create(model, &settings, &trainer) == SHARDPROP_OK);
  shardprop_model_free(model);
  CHECK(shardprop_trainer_train_epoch(trainer, data.features.data(), data.targets.data(), data.rows,
                                      3, 1, nullptr) == SHARDPROP_OK);
  shardprop_trainer_free(trainer);
  shardprop_model_free(nullptr);  // NULL is ignored
  shardprop_trainer_free(nullptr);
}

TEST_CASE("two models trained at once from two threads equal the same models trained in turn",
          "[c_api][determinism]") {
  const Rows data = make_rows(300, 6);
  const std::vector<float> first = train_through_c(data, 3, 2);
  const std::vector<float> second = train_through_c(data, 3, 1);
  REQUIRE(bitwise_equal(first, second));  // threads never change results

  std::vector<float> concurrent[2];
  std::exception_ptr failed[2];
  const auto train_on_thread = [&](int i, int threads) {
    try {
      concurrent[i] = train_through_c(data, 3, threads);
    } catch (...) {
      failed[i] = std::current_exception();
    }
  };
  std::thread a(train_on_thread, 0, 2);
  std::thread b(train_on_thread, 1, 1);
  a.join();
  b.join();
  for (const std::exception_ptr& e : failed) {
    if (e) std::rethrow_exception(e);
  }
  CHECK(bitwise_equal(concurrent[0], first));
  CHECK(bitwise_equal(concurrent[1], second));
}

TEST_CASE("every failure is a status and a message that says what, never a crash", "[c_api]") {
  const Rows data = make_rows(64, 7);
  ModelHandle model;
  REQUIRE(shardprop_model_create("dense(8) relu dense(3)", 3, "xent", 1, &model.p) == SHARDPROP_OK);
  shardprop_trainer_settings settings = adam_settings(1);
  TrainerHandle trainer;
  REQUIRE(shardprop_trainer_create(model.p, &settings, &trainer.p) == SHARDPROP_OK);
  const float* x = data.features.data();
  const float* t = data.targets.data();
  std::vector<float> out(64 * 3);
  const auto out_count = static_cast<std::int64_t>(out.size());
  shardprop_metrics metrics{};
  shardprop_model* new_model = nullptr;
  shardprop_trainer* new_trainer = nullptr;
  int value = 0;
  std::int64_t count = 0;
  double loss = 0.0;

  using Call = std::function<shardprop_status()>;
  struct Case {
    std::string name;
    Call call;
    shardprop_status status;
    std::string message;
  };
  const std::vector<Case> cases{
      // NULL handles and pointers
      {"model_create without layers",
       [&] { return shardprop_model_create(nullptr, 3, "xent", 1, &new_model); },
       SHARDPROP_ERROR_ARGUMENT, "layers is NULL"},
      {"model_create without out",
       [&] { return shardprop_model_create("dense(3)", 3, "xent", 1, nullptr); },
       SHARDPROP_ERROR_ARGUMENT, "model is NULL"},
      {"model_load without path", [&] { return shardprop_model_load(nullptr, &new_model); },
       SHARDPROP_ERROR_ARGUMENT, "path is NULL"},
      {"inputs of NULL", [&] { return shardprop_model_inputs(nullptr, &value); },
       SHARDPROP_ERROR_ARGUMENT, "model is NULL"},
      {"outputs to NULL", [&] { return shardprop_model_outputs(model.p, nullptr); },
       SHARDPROP_ERROR_ARGUMENT, "outputs is NULL"},
      {"parameter count of NULL", [&] { return shardprop_model_parameter_count(nullptr, &count); },
       SHARDPROP_ERROR_ARGUMENT, "model is NULL"},
      {"trainer of NULL model",
       [&] { return shardprop_trainer_create(nullptr, &settings, &new_trainer); },
       SHARDPROP_ERROR_ARGUMENT, "model is NULL"},
      {"trainer without settings",
       [&] { return shardprop_trainer_create(model.p, nullptr, &new_trainer); },
       SHARDPROP_ERROR_ARGUMENT, "settings is NULL"},
      {"step of NULL trainer",
       [&] { return shardprop_trainer_step(nullptr, x, t, 8, 3, 1, &loss); },
       SHARDPROP_ERROR_ARGUMENT, "trainer is NULL"},
      {"step without features",
       [&] { return shardprop_trainer_step(trainer.p, nullptr, t, 8, 3, 1, &loss); },
       SHARDPROP_ERROR_ARGUMENT, "features is NULL"},
      {"epoch without targets",
       [&] { return shardprop_trainer_train_epoch(trainer.p, x, nullptr, 64, 3, 1, &metrics); },
       SHARDPROP_ERROR_ARGUMENT, "targets is NULL"},
      {"evaluate without metrics",
       [&] { return shardprop_model_evaluate(model.p, x, t, 64, 3, 1, 0, nullptr); },
       SHARDPROP_ERROR_ARGUMENT, "metrics is NULL"},
      {"save of NULL model", [&] { return shardprop_checkpoint_save(nullptr, nullptr, "x"); },
       SHARDPROP_ERROR_ARGUMENT, "model is NULL"},
      {"load state into NULL", [&] { return shardprop_trainer_load_state(nullptr, "x"); },
       SHARDPROP_ERROR_ARGUMENT, "trainer is NULL"},
      {"settings_init of NULL", [&] { return shardprop_trainer_settings_init(nullptr); },
       SHARDPROP_ERROR_ARGUMENT, "settings is NULL"},
      {"progress of NULL", [&] { return shardprop_trainer_progress(nullptr, &value, &count); },
       SHARDPROP_ERROR_ARGUMENT, "trainer is NULL"},
      // bad specs and settings
      {"bad layer text",
       [&] {
         return shardprop_model_create("dense(8) frobnicate dense(3)", 3, "xent", 1, &new_model);
       },
       SHARDPROP_ERROR_ARGUMENT, "frobnicate"},
      {"bad loss", [&] { return shardprop_model_create("dense(3)", 3, "hinge", 1, &new_model); },
       SHARDPROP_ERROR_ARGUMENT, "hinge"},
      {"no inputs", [&] { return shardprop_model_create("dense(3)", 0, "xent", 1, &new_model); },
       SHARDPROP_ERROR_ARGUMENT, "input"},
      {"bad optimizer",
       [&] {
         shardprop_trainer_settings s = settings;
         s.optimizer = 7;
         return shardprop_trainer_create(model.p, &s, &new_trainer);
       },
       SHARDPROP_ERROR_ARGUMENT, "optimizer is 7"},
      {"bad batch size",
       [&] {
         shardprop_trainer_settings s = settings;
         s.batch_size = 0;
         return shardprop_trainer_create(model.p, &s, &new_trainer);
       },
       SHARDPROP_ERROR_ARGUMENT, "batch"},
      {"negative threads",
       [&] { return shardprop_model_evaluate(model.p, x, t, 64, 3, 1, -1, &metrics); },
       SHARDPROP_ERROR_ARGUMENT, "threads is -1"},
      // shapes
      {"feature count", [&] { return shardprop_trainer_step(trainer.p, x, t, 8, 4, 1, &loss); },
       SHARDPROP_ERROR_ARGUMENT, "feature_count is 4, the model takes 3"},
      {"target width", [&] { return shardprop_trainer_step(trainer.p, x, t, 8, 3, 3, &loss); },
       SHARDPROP_ERROR_ARGUMENT, "target_width is 3"},
      {"rows above the batch",
       [&] { return shardprop_trainer_step(trainer.p, x, t, 64, 3, 1, &loss); },
       SHARDPROP_ERROR_ARGUMENT, "1 to batch_size (32)"},
      {"negative rows",
       [&] { return shardprop_model_evaluate(model.p, x, t, -2, 3, 1, 0, &metrics); },
       SHARDPROP_ERROR_ARGUMENT, "rows is -2"},
      {"empty epoch",
       [&] { return shardprop_trainer_train_epoch(trainer.p, x, t, 0, 3, 1, &metrics); },
       SHARDPROP_ERROR_ARGUMENT, "at least one row"},
      {"small output array",
       [&] {
         return shardprop_model_predict(model.p, x, 64, 3, SHARDPROP_PREDICT_RAW, out.data(),
                                        out_count - 1, 0);
       },
       SHARDPROP_ERROR_ARGUMENT, "191 floats, 64 rows need 192"},
      {"bad prediction kind",
       [&] { return shardprop_model_predict(model.p, x, 64, 3, 9, out.data(), out_count, 0); },
       SHARDPROP_ERROR_ARGUMENT, "kind is 9"},
      {"small parameter array",
       [&] { return shardprop_model_copy_parameters(model.p, out.data(), 3); },
       SHARDPROP_ERROR_ARGUMENT, "values holds 3 floats"},
      // data
      {"class out of range",
       [&] {
         std::vector<float> bad(t, t + 8);
         bad[5] = 3.0f;
         return shardprop_trainer_step(trainer.p, x, bad.data(), 8, 3, 1, &loss);
       },
       SHARDPROP_ERROR_DATA, "row 5"},
      {"non-finite feature",
       [&] {
         std::vector<float> bad(x, x + 64 * 3);
         bad[4] = std::numeric_limits<float>::quiet_NaN();
         return shardprop_trainer_train_epoch(trainer.p, bad.data(), t, 64, 3, 1, &metrics);
       },
       SHARDPROP_ERROR_DATA, "not finite"},
      // files
      {"missing file",
       [&] { return shardprop_model_load("/nonexistent/model.safetensors", &new_model); },
       SHARDPROP_ERROR_FILE, "/nonexistent/model.safetensors"},
      {"unwritable path",
       [&] {
         return shardprop_checkpoint_save(model.p, trainer.p, "/nonexistent/dir/m.safetensors");
       },
       SHARDPROP_ERROR_FILE, "/nonexistent/dir"},
  };
  const auto index = GENERATE_COPY(range(std::size_t{0}, cases.size()));
  const auto& [name, call, status, message] = cases[index];
  CAPTURE(name);
  CHECK(call() == status);
  const std::string error = shardprop_last_error();
  CAPTURE(error);
  CHECK(error.find(message) != std::string::npos);
  CHECK(error.rfind("shardprop_", 0) == 0);  // names the function that failed
  CHECK(new_model == nullptr);               // out-parameters are written only on success
  CHECK(new_trainer == nullptr);
}

TEST_CASE("a damaged checkpoint is a file error that leaves the trainer as it was",
          "[c_api][checkpoint]") {
  TempDir dir;
  const std::string path = (dir.path() / "run.safetensors").string();
  const Rows data = make_rows(64, 8);
  ModelHandle model;
  REQUIRE(shardprop_model_create("dense(8) relu dense(3)", 3, "xent", 1, &model.p) == SHARDPROP_OK);
  const shardprop_trainer_settings settings = adam_settings(1);
  TrainerHandle trainer;
  REQUIRE(shardprop_trainer_create(model.p, &settings, &trainer.p) == SHARDPROP_OK);
  REQUIRE(shardprop_trainer_train_epoch(trainer.p, data.features.data(), data.targets.data(),
                                        data.rows, 3, 1, nullptr) == SHARDPROP_OK);
  REQUIRE(shardprop_checkpoint_save(model.p, trainer.p, path.c_str()) == SHARDPROP_OK);

  std::vector<char> bytes = shardprop::test::read_bytes(path);
  const std::string damage = GENERATE(as<std::string>{}, "flipped data bit", "truncated");
  CAPTURE(damage);
  if (damage == "truncated") {
    bytes.resize(bytes.size() / 2);
  } else {
    bytes[bytes.size() - 3] = static_cast<char>(bytes[bytes.size() - 3] ^ 0x10);
  }
  shardprop::test::write_bytes(path, bytes);

  shardprop_model* loaded = nullptr;
  CHECK(shardprop_model_load(path.c_str(), &loaded) == SHARDPROP_ERROR_FILE);
  CHECK(loaded == nullptr);
  CHECK(std::string(shardprop_last_error()).find("run.safetensors") != std::string::npos);

  TrainerHandle fresh;
  REQUIRE(shardprop_trainer_create(model.p, &settings, &fresh.p) == SHARDPROP_OK);
  CHECK(shardprop_trainer_load_state(fresh.p, path.c_str()) == SHARDPROP_ERROR_FILE);
  int epochs = -1;
  std::int64_t steps = -1;
  REQUIRE(shardprop_trainer_progress(fresh.p, &epochs, &steps) == SHARDPROP_OK);
  CHECK((epochs == 0 && steps == 0));
}

TEST_CASE("the last error message belongs to the thread that failed", "[c_api]") {
  shardprop_model* model = nullptr;
  REQUIRE(shardprop_model_create("dense(2)", 2, "nope", 1, &model) == SHARDPROP_ERROR_ARGUMENT);
  std::string other_thread = "unset";
  std::thread([&] { other_thread = shardprop_last_error(); }).join();
  CHECK(other_thread.empty());
  CHECK(std::string(shardprop_last_error()).find("nope") != std::string::npos);
}

TEST_CASE("the C API reports the library's version", "[c_api]") {
  CHECK(std::string(shardprop_version()) == shardprop::version());
}
