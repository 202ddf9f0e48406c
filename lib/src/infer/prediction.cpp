// predict_outputs: the network's logits in parallel pieces, turned into what the loss reads them
// as (softmax, sigmoid or nothing) with the labels decided on the logits themselves.
#include "shardprop/prediction.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "base/blas.hpp"
#include "nn/activation.hpp"
#include "shardprop/error.hpp"

namespace shardprop {
namespace {

constexpr std::size_t kPieceRows = 256;

// One row: z holds logits on entry and probabilities on return. exp(z − max) never overflows
// and its largest term is 1, so the sum is at least 1.
void softmax_in_place(float* z, std::size_t n) {
  const float max = *std::max_element(z, z + n);
  double sum = 0.0;
  for (std::size_t j = 0; j < n; ++j) sum += std::exp(static_cast<double>(z[j] - max));
  for (std::size_t j = 0; j < n; ++j) {
    z[j] = static_cast<float>(std::exp(static_cast<double>(z[j] - max)) / sum);
  }
}

}  // namespace

void predict_outputs(const Model& model, std::span<const float> features, std::span<float> outputs,
                     std::span<std::int32_t> labels) {
  const auto in = static_cast<std::size_t>(model.inputs());
  const auto out = static_cast<std::size_t>(model.outputs());
  const Loss loss = model.spec().loss;
  if (features.size() % in != 0) {
    throw Error("predict: " + std::to_string(features.size()) +
                " feature values is not a multiple of the model's " + std::to_string(in) +
                " inputs");
  }
  const std::size_t rows = features.size() / in;
  if (outputs.size() != rows * out) {
    throw Error("predict: the output span holds " + std::to_string(outputs.size()) + " values, " +
                std::to_string(rows) + " rows need " + std::to_string(rows * out));
  }
  const std::size_t label_width = loss == Loss::xent ? 1 : loss == Loss::bce ? out : 0;
  if (!labels.empty() && labels.size() != rows * label_width) {
    throw Error("predict: the label span holds " + std::to_string(labels.size()) + " values, " +
                std::to_string(rows) + " rows of a " + std::string(to_string(loss)) +
                " model need " + std::to_string(rows * label_width));
  }
  const std::size_t pieces = (rows + kPieceRows - 1) / kPieceRows;
  detail::SingleThreadedBlas one_blas_thread;
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, pieces, 1),
                    [&](const tbb::blocked_range<std::size_t>& range) {
                      for (std::size_t piece = range.begin(); piece < range.end(); ++piece) {
                        const std::size_t begin = piece * kPieceRows;
                        const std::size_t count = std::min(kPieceRows, rows - begin);
                        model.predict(features.subspan(begin * in, count * in),
                                      outputs.subspan(begin * out, count * out));
                        for (std::size_t r = begin; r < begin + count; ++r) {
                          float* z = outputs.data() + r * out;
                          if (loss == Loss::xent) {
                            if (!labels.empty()) {
                              labels[r] =
                                  static_cast<std::int32_t>(std::max_element(z, z + out) - z);
                            }
                            softmax_in_place(z, out);
                          } else if (loss == Loss::bce) {
                            for (std::size_t j = 0; j < out; ++j) {
                              if (!labels.empty()) labels[r * out + j] = z[j] > 0.0f ? 1 : 0;
                              z[j] = detail::sigmoid(z[j]);
                            }
                          }
                        }
                      }
                    });
}

}  // namespace shardprop
