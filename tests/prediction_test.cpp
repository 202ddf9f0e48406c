// predict_outputs (softmax, sigmoid and raw values, labels decided on the logits) and the CSV
// writer (header, quoting, numbers that read back, atomic replacement).
#include <tbb/task_arena.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "shardprop/error.hpp"
#include "shardprop/prediction.hpp"
#include "test_util.hpp"

using namespace shardprop;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

namespace {

// outputs = features (a dense layer with W = I, b = 0).
Model identity_model(int width, Loss loss) {
  ModelSpec spec;
  spec.inputs = width;
  spec.layers = {DenseSpec{width}};
  spec.loss = loss;
  Model model(spec);
  for (const TensorInfo& t : model.tensors()) {
    if (t.name != "0.weight") continue;
    for (int j = 0; j < width; ++j) model.parameters()[t.offset + j * width + j] = 1.0f;
  }
  return model;
}

TrainedModel trained(Model model, std::vector<std::string> targets,
                     std::vector<std::string> classes) {
  return TrainedModel{std::move(model),
                      {},
                      std::move(targets),
                      std::move(classes),
                      {},
                      {},
                      shardprop::CsvOptions{}.na_values,
                      {}};
}

}  // namespace

TEST_CASE("xent outputs are a stable softmax and the labels the first largest logit",
          "[prediction]") {
  const Model model = identity_model(3, Loss::xent);
  // A large logit would overflow a naive exp; a tie goes to the first class.
  const std::vector<float> x{1, 2, 3, 1000, 0, -1000, 5, 5, 1};
  std::vector<float> p(9);
  std::vector<std::int32_t> labels(3);
  predict_outputs(model, x, p, labels);
  CHECK(labels == std::vector<std::int32_t>{2, 0, 0});
  const double sum = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK_THAT(p[0], WithinRel(std::exp(1.0) / sum, 1e-6));
  CHECK_THAT(p[2], WithinRel(std::exp(3.0) / sum, 1e-6));
  CHECK(p[3] == 1.0f);
  CHECK(p[5] == 0.0f);
  for (int r = 0; r < 3; ++r)
    CHECK_THAT(p[3 * r] + p[3 * r + 1] + p[3 * r + 2], WithinAbs(1, 1e-6));
}

TEST_CASE("bce outputs are σ(z) with 0/1 labels from the logit's sign, and mse outputs are raw",
          "[prediction]") {
  std::vector<float> out(4);
  std::vector<std::int32_t> labels(4);
  predict_outputs(identity_model(2, Loss::bce), std::vector<float>{0, -2, 1e-9f, 30}, out, labels);
  CHECK(out[0] == 0.5f);
  CHECK_THAT(out[1], WithinRel(1.0 / (1.0 + std::exp(2.0)), 1e-6));
  CHECK(labels == std::vector<std::int32_t>{0, 0, 1, 1});  // 1e-9 > 0 though σ rounds to 0.5
  predict_outputs(identity_model(2, Loss::mse), std::vector<float>{-7.5f, 3}, {out.data(), 2});
  CHECK(out[0] == -7.5f);
  CHECK(out[1] == 3.0f);
  CHECK_THROWS_AS(predict_outputs(identity_model(2, Loss::mse), std::vector<float>{1, 2},
                                  {out.data(), 2}, {labels.data(), 1}),
                  Error);
}

TEST_CASE("the prediction CSV has a header, quoted names and numbers that read back",
          "[prediction][csv]") {
  test::TempDir dir;
  const auto path = dir / "out.csv";
  const std::vector<float> x{3, 1, 0.1f, 0.2f};
  SECTION("class names, quoted as RFC 4180 needs") {
    const TrainedModel model =
        trained(identity_model(2, Loss::xent), {"the label"}, {"a,b", " say \"hi\""});
    PredictionCsvWriter writer(path, model);
    writer.write(x);
    writer.commit();
    CHECK(test::read_text(path) == "the label\n\"a,b\"\n\" say \"\"hi\"\"\"\n");
    CHECK(writer.rows_written() == 2);
  }
  SECTION("with probabilities: the class first, then one column per class") {
    PredictionCsvOptions options;
    options.probabilities = true;
    const TrainedModel model = trained(identity_model(2, Loss::xent), {"y"}, {"n", "p"});
    PredictionCsvWriter writer(path, model, options);
    writer.write(x);
    writer.commit();
    const std::vector<std::string> lines = [&] {
      std::vector<std::string> result;
      std::string text = test::read_text(path);
      for (std::size_t at = 0; at < text.size();) {
        const std::size_t end = text.find('\n', at);
        result.push_back(text.substr(at, end - at));
        at = end + 1;
      }
      return result;
    }();
    REQUIRE(lines.size() == 3);
    CHECK(lines[0] == "y,n,p");
    CHECK(lines[1].rfind("n,", 0) == 0);
    // The printed probability reads back to the very float predicted.
    std::vector<float> p(4);
    predict_outputs(identity_model(2, Loss::xent), x, p);
    const std::string first = lines[1].substr(2, lines[1].find(',', 2) - 2);
    CHECK(std::strtof(first.c_str(), nullptr) == p[0]);
  }
  SECTION("regression values per target, with the delimiter asked for") {
    PredictionCsvOptions options;
    options.delimiter = ';';
    const TrainedModel model = trained(identity_model(2, Loss::mse), {"u", "v"}, {});
    PredictionCsvWriter writer(path, model, options);
    writer.write(std::vector<float>{0.1f, -2.5f});
    writer.commit();
    CHECK(test::read_text(path) == "u;v\n0.1;-2.5\n");
  }
  SECTION("probabilities of a regression model are an error") {
    PredictionCsvOptions options;
    options.probabilities = true;
    const TrainedModel model = trained(identity_model(1, Loss::mse), {}, {});
    CHECK_THROWS_WITH(PredictionCsvWriter(path, model, options),
                      Contains("probabilities need a classifier"));
  }
}

TEST_CASE("a prediction writer destroyed without commit leaves the old file and no temp file",
          "[prediction]") {
  test::TempDir dir;
  const auto path = dir / "out.csv";
  test::write_text(path, "old\n");
  const TrainedModel model = trained(identity_model(1, Loss::mse), {"y"}, {});
  {
    PredictionCsvWriter writer(path, model);
    writer.write(std::vector<float>{1, 2, 3});
    CHECK(test::directory_entries(dir.path()).size() == 2);  // out.csv and the hidden temp file
  }
  CHECK(test::read_text(path) == "old\n");
  CHECK(test::directory_entries(dir.path()) == std::vector<std::string>{"out.csv"});
}
