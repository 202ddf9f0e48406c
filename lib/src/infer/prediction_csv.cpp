// PredictionCsvWriter: predictions of each block of rows formatted into one text and appended to
// the atomic writer's temporary file, so memory stays bounded by the block, not the file.
#include <charconv>
#include <string>
#include <string_view>
#include <vector>

#include "base/atomic_file.hpp"
#include "shardprop/error.hpp"
#include "shardprop/prediction.hpp"

namespace shardprop {
namespace {

// A field as RFC 4180 needs it: quoted (with "" for ") when it holds the delimiter, a quote or a
// line break, or when it starts or ends with a blank, which the reader would trim. An empty name
// is quoted too, so that a one-column header is not a blank line.
void append_field(std::string& line, std::string_view text, char delimiter) {
  const bool blank_edge = !text.empty() && (text.front() == ' ' || text.front() == '\t' ||
                                            text.back() == ' ' || text.back() == '\t');
  const bool quote =
      text.empty() || blank_edge ||
      text.find_first_of(std::string{delimiter, '"', '\n', '\r'}) != std::string_view::npos;
  if (!quote) {
    line.append(text);
    return;
  }
  line.push_back('"');
  for (const char c : text) {
    if (c == '"') line.push_back('"');
    line.push_back(c);
  }
  line.push_back('"');
}

// The shortest text that reads back to the same float.
void append_number(std::string& line, float value) {
  char digits[32];
  const std::to_chars_result result = std::to_chars(digits, digits + sizeof digits, value);
  line.append(digits, result.ptr);
}

}  // namespace

struct PredictionCsvWriter::State {
  const Model& model;
  Loss loss;
  std::size_t outputs;
  char delimiter;
  bool probabilities;
  std::vector<std::string> class_names;
  detail::AtomicFileWriter file;
  std::vector<float> values;
  std::vector<std::int32_t> labels;
  std::string text;
  std::int64_t rows = 0;

  State(const std::filesystem::path& path, const TrainedModel& trained,
        const PredictionCsvOptions& options)
      : model(trained.model),
        loss(trained.model.spec().loss),
        outputs(static_cast<std::size_t>(trained.model.outputs())),
        delimiter(options.delimiter),
        probabilities(options.probabilities),
        class_names(trained.class_names),
        file(path) {}

  void separate(std::size_t column) {
    if (column > 0) text.push_back(delimiter);
  }

  void write_header(const std::vector<std::string>& target_names) {
    std::size_t column = 0;
    if (loss == Loss::xent) {
      append_field(text, target_names.empty() ? "class" : target_names.front(), delimiter);
      ++column;
      for (std::size_t k = 0; probabilities && k < outputs; ++k) {
        separate(column++);
        append_field(text, class_names[k], delimiter);
      }
    } else {
      for (std::size_t j = 0; j < outputs; ++j) {
        separate(column++);
        append_field(text, target_names.empty() ? "output_" + std::to_string(j) : target_names[j],
                     delimiter);
      }
    }
    text.push_back('\n');
    file.write(text);
    text.clear();
  }

  void write(std::span<const float> features) {
    const auto inputs = static_cast<std::size_t>(model.inputs());
    const std::size_t rows_here = features.size() / inputs;
    values.resize(rows_here * outputs);
    labels.resize(loss == Loss::xent ? rows_here : loss == Loss::bce ? rows_here * outputs : 0);
    predict_outputs(model, features, values, labels);
    text.clear();
    for (std::size_t r = 0; r < rows_here; ++r) {
      const float* v = values.data() + r * outputs;
      switch (loss) {
        case Loss::xent:
          append_field(text, class_names[static_cast<std::size_t>(labels[r])], delimiter);
          for (std::size_t k = 0; probabilities && k < outputs; ++k) {
            text.push_back(delimiter);
            append_number(text, v[k]);
          }
          break;
        case Loss::bce:
          for (std::size_t j = 0; j < outputs; ++j) {
            separate(j);
            if (probabilities) {
              append_number(text, v[j]);
            } else {
              text.push_back(labels[r * outputs + j] != 0 ? '1' : '0');
            }
          }
          break;
        case Loss::mse:
          for (std::size_t j = 0; j < outputs; ++j) {
            separate(j);
            append_number(text, v[j]);
          }
          break;
      }
      text.push_back('\n');
    }
    file.write(text);
    rows += static_cast<std::int64_t>(rows_here);
  }
};

PredictionCsvWriter::PredictionCsvWriter(const std::filesystem::path& path,
                                         const TrainedModel& model,
                                         const PredictionCsvOptions& options) {
  const Loss loss = model.model.spec().loss;
  if (options.probabilities && loss == Loss::mse) {
    throw Error(path.string() +
                ": probabilities need a classifier (loss xent or bce); this model's loss is mse");
  }
  const char d = options.delimiter;
  if (d == '"' || d == '\n' || d == '\r' || d == '\0') {
    throw Error(path.string() + ": the delimiter cannot be a quote, CR, LF or NUL");
  }
  if (loss == Loss::xent &&
      model.class_names.size() != static_cast<std::size_t>(model.model.outputs())) {
    throw Error(path.string() + ": the model has " + std::to_string(model.model.outputs()) +
                " outputs but " + std::to_string(model.class_names.size()) + " class names");
  }
  if (!model.target_names.empty() &&
      model.target_names.size() !=
          (loss == Loss::xent ? 1 : static_cast<std::size_t>(model.model.outputs()))) {
    throw Error(path.string() + ": " + std::to_string(model.target_names.size()) +
                " target names do not fit the model's " + std::to_string(model.model.outputs()) +
                " outputs");
  }
  state_ = std::make_unique<State>(path, model, options);
  state_->write_header(model.target_names);
}

PredictionCsvWriter::~PredictionCsvWriter() = default;

void PredictionCsvWriter::write(std::span<const float> features) { state_->write(features); }

void PredictionCsvWriter::commit() { state_->file.commit(); }

std::int64_t PredictionCsvWriter::rows_written() const { return state_->rows; }

}  // namespace shardprop
