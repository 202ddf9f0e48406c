// `shardprop predict`. Block by block: read rows (CsvStream), predict and append their lines
// (PredictionCsvWriter, which writes a temporary file renamed over --output only at the end).
#include "predict_command.hpp"
#include "command_arena.hpp"

#include <cstdio>
#include <memory>
#include <string>

#include "input_file.hpp"
#include "model_input.hpp"
#include "preamble_options.hpp"
#include "shardprop/data_stream.hpp"
#include "shardprop/dataset.hpp"
#include "shardprop/error.hpp"
#include "shardprop/prediction.hpp"
#include "shardprop/trained_model.hpp"

namespace shardprop::cli {

CLI::App* add_predict_command(CLI::App& app, PredictOptions& o) {
  CLI::App* cmd = app.add_subcommand("predict", "Predict every row of a CSV file with a model");
  cmd->add_option("--model", o.model, "Weights file written by shardprop train --out")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", o.data,
                  "Input CSV (plain, gzip or zstd; - reads standard input, streamed once); the "
                  "model's feature columns are found by header name, other columns (an id, the "
                  "target) are ignored")
      ->required()
      ->check(kInputFile);
  cmd->add_option("--output", o.output,
                  "Write the predictions here (CSV, replaced atomically; untouched on error)")
      ->required();
  cmd->add_flag("--probabilities", o.probabilities,
                "Classifiers: xent prints the class, then one probability column per class; "
                "bce prints probabilities instead of 0/1");
  cmd->add_option("--delimiter", o.delimiter,
                  "Field delimiter of the input, and of the output: one character, or 'tab'")
      ->capture_default_str();
  cmd->add_flag("--no-header", o.no_header,
                "The first line is data; the first N columns are the model's N features");
  add_preamble_options(cmd, o.skip_rows, o.comment);
  cmd->add_option_function<std::string>(
      "--na-values", [&o](const std::string& list) { o.na_values = parse_na_values(list); },
      "Field texts that mean a missing value, comma-separated as for train (default: the "
      "model's); missing cells are filled in, left out or refused as the model was trained");
  cmd->add_option("--threads", o.threads, "Worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  return cmd;
}

namespace {

// What the missing_value fault says after the value, under the error policy.
constexpr const char* kErrorPolicyNote = " (CsvOptions::missing is error)";

int predict(const PredictOptions& o) {
  const TrainedModel trained = load_trained_model(o.model);
  CsvOptions csv;
  csv.delimiter = parse_delimiter(o.delimiter);
  csv.header = !o.no_header;
  set_preamble_options(csv, o.skip_rows, o.comment);
  csv.no_target = true;
  csv.na_values = o.na_values ? *o.na_values : trained.na_values;
  const std::unique_ptr<CsvStream> stream = open_model_input(trained, o.data, csv);
  PredictionCsvOptions format;
  format.delimiter = csv.delimiter;
  format.probabilities = o.probabilities;
  PredictionCsvWriter writer(o.output, trained, format);
  // The next block is parsed while this one's predictions are computed and written.
  UnseenCategoryCount counted(*stream);
  try {
    for_each_chunk(counted, [&](const Dataset& block) { writer.write(block.features); });
  } catch (const Error& e) {
    // A drop model's missing cells are read as errors: every row needs a prediction.
    const std::string what = e.what();
    const std::size_t policy = what.find(kErrorPolicyNote);
    if (trained.imputation.policy != MissingPolicy::drop || policy == std::string::npos) throw;
    throw Error(what.substr(0, policy) +
                ": the model was trained with --missing drop, and predict cannot leave a row out "
                "of its predictions; fill the cell in");
  }
  writer.commit();
  counted.report(o.data == "-" ? "<stdin>" : o.data);
  std::printf("wrote %lld predictions to %s\n", static_cast<long long>(writer.rows_written()),
              o.output.c_str());
  return 0;
}

}  // namespace

int run_predict(const PredictOptions& o) {
  // The library runs in the caller's arena: here is where the thread count is decided.
  CommandArena arena(o.threads);
  return arena.execute([&] { return predict(o); });
}

}  // namespace shardprop::cli
