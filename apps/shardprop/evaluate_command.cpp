// `shardprop evaluate`. Reads the CSV as a stream, so its size is not bounded by memory; the
// metrics come from evaluate_model, and this file only chooses columns and formats the report.
#include "evaluate_command.hpp"
#include "command_arena.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "input_file.hpp"
#include "model_input.hpp"
#include "preamble_options.hpp"
#include "shardprop/error.hpp"
#include "shardprop/evaluation.hpp"
#include "shardprop/trained_model.hpp"

namespace shardprop::cli {

CLI::App* add_evaluate_command(CLI::App& app, EvaluateOptions& o) {
  CLI::App* cmd = app.add_subcommand("evaluate", "Score a trained model on a labelled CSV file");
  cmd->add_option("--model", o.model, "Weights file written by shardprop train --out")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", o.data,
                  "Labelled CSV (plain, gzip or zstd; - reads standard input, streamed once); "
                  "the model's feature columns are found by header name")
      ->required()
      ->check(kInputFile);
  cmd->add_option("--target", o.targets,
                  "Target column(s) by name or 0-based index, comma-separated (default: the "
                  "columns the model was trained on; with --no-header the columns after the "
                  "features)")
      ->delimiter(',');
  cmd->add_option("--delimiter", o.delimiter, "Field delimiter: one character, or 'tab'")
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
  cmd->add_flag("--json", o.json, "Print the report as one JSON object instead of tables");
  return cmd;
}

namespace {

// Classes beyond this print no confusion matrix on the terminal (it is in --json).
constexpr int kMaxMatrixClasses = 20;
constexpr std::size_t kMaxNameWidth = 24;

std::string shortened(const std::string& name) {
  if (name.size() <= kMaxNameWidth) return name;
  return name.substr(0, kMaxNameWidth - 3) + "...";
}

std::vector<std::string> target_columns(const EvaluateOptions& o, const TrainedModel& trained) {
  if (!o.targets.empty()) return o.targets;
  const int count = trained.model.spec().loss == Loss::xent ? 1 : trained.model.outputs();
  if (!o.no_header && !trained.target_names.empty()) return trained.target_names;
  if (!o.no_header) {
    throw Error(o.model + ": the file does not record its target columns; give --target");
  }
  std::vector<std::string> positions;  // the columns right after the features
  for (int j = 0; j < count; ++j) positions.push_back(std::to_string(trained.model.inputs() + j));
  return positions;
}

std::vector<std::string> output_names(const TrainedModel& trained,
                                      const std::vector<std::string>& targets) {
  if (targets.size() == static_cast<std::size_t>(trained.model.outputs())) return targets;
  std::vector<std::string> names;
  for (int j = 0; j < trained.model.outputs(); ++j) names.push_back("output_" + std::to_string(j));
  return names;
}

nlohmann::json report_json(const EvaluateOptions& o, const EvaluationReport& r,
                           const TrainedModel& trained, const std::vector<std::string>& targets) {
  nlohmann::json j{{"model", o.model},
                   {"data", o.data},
                   {"targets", targets},
                   {"rows", r.rows},
                   {"loss", std::string(to_string(r.loss))},
                   {"mean_loss", r.mean_loss}};
  if (r.loss == Loss::xent) {
    j["accuracy"] = r.accuracy;
    nlohmann::json classes = nlohmann::json::array();
    nlohmann::json matrix = nlohmann::json::array();
    for (int c = 0; c < r.classes; ++c) {
      const ClassQuality& q = r.per_class[static_cast<std::size_t>(c)];
      classes.push_back({{"name", trained.class_names[static_cast<std::size_t>(c)]},
                         {"precision", q.precision},
                         {"recall", q.recall},
                         {"f1", q.f1},
                         {"support", q.support},
                         {"predicted", q.predicted}});
      nlohmann::json row = nlohmann::json::array();
      for (int p = 0; p < r.classes; ++p) row.push_back(r.confusion_count(c, p));
      matrix.push_back(row);
    }
    j["classes"] = classes;
    j["confusion"] = matrix;  // rows: true class, columns: predicted class
  } else if (r.loss == Loss::bce) {
    j["accuracy"] = r.accuracy;
    const std::vector<std::string> names = output_names(trained, targets);
    nlohmann::json outputs = nlohmann::json::array();
    for (std::size_t k = 0; k < r.output_accuracy.size(); ++k) {
      outputs.push_back({{"name", names[k]}, {"accuracy", r.output_accuracy[k]}});
    }
    j["outputs"] = outputs;
  } else {
    j["rmse"] = r.overall.rmse;
    j["mae"] = r.overall.mae;
    j["r2"] = r.overall.r2;
    const std::vector<std::string> names = output_names(trained, targets);
    nlohmann::json per_target = nlohmann::json::array();
    for (std::size_t k = 0; k < r.per_target.size(); ++k) {
      const RegressionQuality& q = r.per_target[k];
      per_target.push_back({{"name", names[k]}, {"rmse", q.rmse}, {"mae", q.mae}, {"r2", q.r2}});
    }
    j["per_target"] = per_target;
  }
  return j;
}

void print_classes(const EvaluationReport& r, const TrainedModel& trained) {
  std::size_t width = 5;  // "class"
  for (const std::string& name : trained.class_names) {
    width = std::max(width, shortened(name).size());
  }
  const int w = static_cast<int>(width);
  std::printf("%-*s  precision  recall      f1   support\n", w, "class");
  for (int c = 0; c < r.classes; ++c) {
    const ClassQuality& q = r.per_class[static_cast<std::size_t>(c)];
    std::printf("%-*s  %9.4f  %6.4f  %6.4f  %8lld\n", w,
                shortened(trained.class_names[static_cast<std::size_t>(c)]).c_str(), q.precision,
                q.recall, q.f1, static_cast<long long>(q.support));
  }
  if (r.classes > kMaxMatrixClasses) {
    std::printf("confusion matrix: %d classes, too many to show here; see --json\n", r.classes);
    return;
  }
  std::printf("confusion matrix (rows: true class, columns: predicted):\n");
  std::size_t cell = 1;
  for (const std::int64_t count : r.confusion) cell = std::max(cell, std::to_string(count).size());
  std::vector<int> column_width;
  std::printf("%-*s", w, "");
  for (int p = 0; p < r.classes; ++p) {
    const std::string name = shortened(trained.class_names[static_cast<std::size_t>(p)]);
    column_width.push_back(static_cast<int>(std::max(cell, name.size())));
    std::printf("  %*s", column_width.back(), name.c_str());
  }
  std::printf("\n");
  for (int t = 0; t < r.classes; ++t) {
    std::printf("%-*s", w, shortened(trained.class_names[static_cast<std::size_t>(t)]).c_str());
    for (int p = 0; p < r.classes; ++p) {
      std::printf("  %*lld", column_width[static_cast<std::size_t>(p)],
                  static_cast<long long>(r.confusion_count(t, p)));
    }
    std::printf("\n");
  }
}

void print_report(const EvaluateOptions& o, const EvaluationReport& r, const TrainedModel& trained,
                  const std::vector<std::string>& targets) {
  std::printf("%s: %lld rows, loss %.6f (%s)", o.data.c_str(), static_cast<long long>(r.rows),
              r.mean_loss, std::string(to_string(r.loss)).c_str());
  if (r.loss == Loss::mse) {
    std::printf(", rmse %.6g, mae %.6g, r2 %.6f\n", r.overall.rmse, r.overall.mae, r.overall.r2);
  } else {
    std::printf(", accuracy %.2f%%\n", 100.0 * r.accuracy);
  }
  const std::vector<std::string> names = output_names(trained, targets);
  if (r.loss == Loss::xent) {
    print_classes(r, trained);
  } else if (r.loss == Loss::bce && r.output_accuracy.size() > 1) {
    for (std::size_t k = 0; k < r.output_accuracy.size(); ++k) {
      std::printf("  %-*s  accuracy %.2f%%\n", static_cast<int>(kMaxNameWidth),
                  shortened(names[k]).c_str(), 100.0 * r.output_accuracy[k]);
    }
  } else if (r.loss == Loss::mse && r.per_target.size() > 1) {
    for (std::size_t k = 0; k < r.per_target.size(); ++k) {
      const RegressionQuality& q = r.per_target[k];
      std::printf("  %-*s  rmse %.6g, mae %.6g, r2 %.6f\n", static_cast<int>(kMaxNameWidth),
                  shortened(names[k]).c_str(), q.rmse, q.mae, q.r2);
    }
  }
}

int evaluate(const EvaluateOptions& o) {
  const TrainedModel trained = load_trained_model(o.model);
  CsvOptions csv;
  csv.delimiter = parse_delimiter(o.delimiter);
  csv.header = !o.no_header;
  set_preamble_options(csv, o.skip_rows, o.comment);
  csv.targets = target_columns(o, trained);
  csv.na_values = o.na_values ? *o.na_values : trained.na_values;
  const Loss loss = trained.model.spec().loss;
  const std::size_t needed =
      loss == Loss::xent ? 1 : static_cast<std::size_t>(trained.model.outputs());
  if (csv.targets.size() != needed) {
    throw Error("--target names " + std::to_string(csv.targets.size()) + " columns; the " +
                std::string(to_string(loss)) + " model in " + o.model + " needs " +
                std::to_string(needed));
  }
  const std::unique_ptr<CsvStream> stream = open_model_input(trained, o.data, csv);
  const std::string input = o.data == "-" ? "<stdin>" : o.data;  // as CSV messages name it
  UnseenCategoryCount counted(*stream);
  EvaluationReport report;
  try {
    report = evaluate_model(trained.model, counted);
  } catch (const Error& e) {
    // CSV messages name the file already; the evaluation's own (a bad target) do not.
    const std::string what = e.what();
    if (what.starts_with(input)) throw;
    throw Error(input + ": " + what);
  }
  if (report.rows == 0) throw Error(input + ": no data rows");
  const std::int64_t dropped = stream->dropped_rows();
  counted.report(input);
  if (o.json) {
    nlohmann::json j = report_json(o, report, trained, csv.targets);
    if (trained.imputation.policy == MissingPolicy::drop) j["dropped_rows"] = dropped;
    if (!trained.categorical.empty()) j["unseen_category_rows"] = counted.rows();
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    print_report(o, report, trained, csv.targets);
    if (trained.imputation.policy == MissingPolicy::drop) {
      std::printf(
          "%lld rows with missing values left out (the model was trained with --missing "
          "drop)\n",
          static_cast<long long>(dropped));
    }
  }
  return 0;
}

}  // namespace

int run_evaluate(const EvaluateOptions& o) {
  // The library runs in the caller's arena: here is where the thread count is decided.
  CommandArena arena(o.threads);
  return arena.execute([&] { return evaluate(o); });
}

}  // namespace shardprop::cli
