// Trains a small network on two interleaved spirals it makes itself, checks that a checkpoint
// resumes bitwise, and exits non-zero unless the test accuracy reaches 95%.
#include <shardprop/checkpoint.hpp>
#include <shardprop/dataset.hpp>
#include <shardprop/error.hpp>
#include <shardprop/evaluation.hpp>
#include <shardprop/model.hpp>
#include <shardprop/trainer.hpp>
#include <shardprop/version.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

// Two spirals of `rows` points in total with a little noise; the class is the spiral.
shardprop::Dataset make_spirals(int rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  std::uniform_real_distribution<float> position(0.05f, 1.0f);
  shardprop::Dataset data;
  data.rows = rows;
  data.feature_count = 2;
  data.target_width = 1;
  for (int i = 0; i < rows; ++i) {
    const int spiral = i % 2;
    const float r = position(rng);
    const float angle = 3.0f * 3.14159265f * r + 3.14159265f * static_cast<float>(spiral);
    data.features.push_back(r * std::cos(angle) + noise(rng));
    data.features.push_back(r * std::sin(angle) + noise(rng));
    data.targets.push_back(static_cast<float>(spiral));  // xent: the class index as a float
  }
  return data;
}

int main() {
  try {
    const shardprop::Dataset train = make_spirals(2000, 1);
    const shardprop::Dataset test = make_spirals(1000, 2);

    shardprop::ModelSpec spec;
    spec.inputs = 2;
    spec.layers = shardprop::parse_layers("dense(64) tanh dense(64) tanh dense(2)");
    spec.loss = shardprop::Loss::xent;
    shardprop::Model model(spec);
    model.initialize(/*seed=*/7);

    shardprop::TrainerSettings settings;  // threads 0: the caller's tbb::task_arena
    settings.batch_size = 64;
    settings.learning_rate = 0.02f;
    settings.optimizer = shardprop::Optimizer::adam;
    shardprop::Trainer trainer(model, settings);  // validates, sizes every buffer once

    for (int epoch = 0; epoch < 100; ++epoch) trainer.train_epoch(train);
    shardprop::save_checkpoint(model, trainer, "spirals.safetensors");  // + optimizer state

    // Resume from the file: the next epoch equals the one the running trainer computes.
    shardprop::Model resumed = shardprop::load_model("spirals.safetensors");
    shardprop::Trainer continued(resumed, settings);
    shardprop::load_training_state(continued, resumed, "spirals.safetensors");
    trainer.train_epoch(train);
    continued.train_epoch(train);
    const bool bitwise = std::memcmp(model.parameters().data(), resumed.parameters().data(),
                                     model.parameters().size_bytes()) == 0;

    const shardprop::EvaluationReport report = shardprop::evaluate_model(model, test);
    std::printf("shardprop %s: test loss %.4f, accuracy %.2f%%, resume %s\n",
                shardprop::version().c_str(), report.mean_loss, 100.0 * report.accuracy,
                bitwise ? "bitwise equal" : "DIFFERENT");
    return report.accuracy >= 0.95 && bitwise ? 0 : 1;
  } catch (const shardprop::Error& e) {  // bad input, settings or files: what and where
    std::fprintf(stderr, "spirals: %s\n", e.what());
    return 1;
  }
}
