// The memory a trainer sizes once (trainer.cpp's State, network.cpp's workspaces), counted from
// the spec's shapes in the same layout, and the up-front check against what the machine has.
#include "shardprop/memory_estimate.hpp"

#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <variant>

#include "base/aligned.hpp"
#include "base/overloaded.hpp"
#include "nn/loss.hpp"
#include "nn/network.hpp"
#include "shardprop/error.hpp"
#include "train/optimizer.hpp"
#include "train/shard_plan.hpp"

namespace shardprop {
namespace {

constexpr std::uint64_t kFloat = sizeof(float);

// What the layer stack needs, per parameter and per row of a pass.
struct StackShape {
  std::uint64_t parameter_floats = 0;  // padded per tensor, as Network lays them out
  std::uint64_t counters = 0;
  std::uint64_t training_floats_per_row = 0;   // outputs + batch-norm xhat + dropout masks
  std::uint64_t inference_floats_per_row = 0;  // outputs
  std::uint64_t max_width = 0;
  int outputs = 0;
};

StackShape stack_shape(const ModelSpec& spec) {
  detail::validate(spec);
  StackShape shape;
  std::uint64_t width = static_cast<std::uint64_t>(spec.inputs);
  shape.max_width = width;
  const auto tensor = [&](std::uint64_t floats) {
    shape.parameter_floats += detail::pad_to_line(static_cast<std::size_t>(floats));
  };
  for (std::size_t l = 0; l < spec.layers.size(); ++l) {
    const LayerSpec& layer = spec.layers[l];
    std::visit(detail::Overloaded{
                   [&](const DenseSpec& d) {
                     const auto units = static_cast<std::uint64_t>(d.units);
                     tensor(units * width);
                     tensor(units);
                     width = units;
                   },
                   [&](const ActivationSpec&) {},
                   [&](const BatchNormSpec&) {
                     for (int k = 0; k < 4; ++k) tensor(width);  // γ, β, running mean, var
                     ++shape.counters;
                     shape.training_floats_per_row += width;  // xhat
                   },
                   [&](const DropoutSpec&) { shape.training_floats_per_row += width; },
               },
               layer);
    // A layer written over the one below it has no buffer of its own.
    if (!detail::writes_in_place(spec.layers, l)) {
      shape.training_floats_per_row += width;
      shape.inference_floats_per_row += width;
    }
    shape.max_width = std::max(shape.max_width, width);
  }
  shape.training_floats_per_row += 2 * shape.max_width;  // the two backward deltas
  shape.outputs = static_cast<int>(width);
  return shape;
}

std::uint64_t round_up_to_line(std::uint64_t floats) {
  return detail::pad_to_line(static_cast<std::size_t>(floats));
}

}  // namespace

std::uint64_t MemoryEstimate::total() const {
  return parameters + optimizer_state + gradients + workspaces + best_weights + data;
}

std::string MemoryEstimate::describe() const {
  std::string text = format_bytes(total()) + " (";
  bool first = true;
  const auto part = [&](const char* name, std::uint64_t bytes) {
    if (bytes == 0) return;
    text += (first ? "" : ", ") + std::string(name) + " " + format_bytes(bytes);
    first = false;
  };
  part("parameters", parameters);
  part("optimizer state", optimizer_state);
  part("gradient buffers", gradients);
  part("workspaces", workspaces);
  part("best weights", best_weights);
  part("data", data);
  return text + ")";
}

MemoryEstimate estimate_training_memory(const ModelSpec& spec, const TrainerSettings& settings,
                                        int ranks, bool early_stopping) {
  const StackShape shape = stack_shape(spec);
  // Settings the trainer refuses (it says why) are counted as the nearest it would take.
  const int batch_size = std::max(settings.batch_size, 1);
  ranks = std::max(ranks, 1);
  const int shards = settings.shards > 0 ? settings.shards
                                         : std::max(default_shard_count(spec, batch_size), ranks);
  const detail::ShardPlan plan(batch_size, shards);
  const detail::RankShards mine(plan, ranks, 0);
  const int threads =
      settings.threads > 0 ? settings.threads : tbb::this_task_arena::max_concurrency();

  MemoryEstimate m;
  const std::uint64_t parameter_bytes = shape.parameter_floats * kFloat + shape.counters * 8;
  m.parameters = parameter_bytes;
  m.optimizer_state = static_cast<std::uint64_t>(detail::optimizer_slots(settings)) *
                      shape.parameter_floats * kFloat;
  // One buffer per shard of the largest group, plus a receive buffer when ranks exchange.
  const std::uint64_t buffers = static_cast<std::uint64_t>(mine.shard_count) + (ranks > 1 ? 1 : 0);
  m.gradients = buffers * round_up_to_line(shape.parameter_floats) * kFloat;
  const int target_width = detail::target_width(spec.loss, shape.outputs);
  std::uint64_t workspace_floats = 0;
  for (int i = 0; i < mine.shard_count; ++i) {
    workspace_floats +=
        static_cast<std::uint64_t>(plan.size(mine.first_shard + i)) * shape.training_floats_per_row;
  }
  workspace_floats += static_cast<std::uint64_t>(batch_size) *
                      (static_cast<std::uint64_t>(spec.inputs) + target_width);
  workspace_floats += static_cast<std::uint64_t>(std::max(threads, 1)) * detail::kInferenceRows *
                      shape.inference_floats_per_row;
  m.workspaces = workspace_floats * kFloat;
  m.best_weights = early_stopping ? parameter_bytes : 0;
  return m;
}

std::uint64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string line; std::getline(meminfo, line);) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "MemAvailable: %llu kB", &kb) == 1) return kb * 1024;
  }
  const long pages = ::sysconf(_SC_AVPHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

std::uint64_t peak_resident_memory() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kb) == 1) return kb * 1024;
  }
  return 0;
}

void check_memory(const MemoryEstimate& estimate, std::uint64_t cap, std::uint64_t available) {
  const std::uint64_t needed = estimate.total();
  const bool over_cap = cap > 0 && needed > cap;
  // The data is in memory already: what is available is what the rest still needs.
  const bool over_available = available > 0 && needed - estimate.data > available;
  if (!over_cap && !over_available) return;
  std::string text = "training needs about " + estimate.describe() + ", more than ";
  text += over_cap ? "the memory limit of " + format_bytes(cap)
                   : format_bytes(available) + " of available memory" +
                         (estimate.data > 0 ? " beyond the data loaded" : std::string());
  text += "; a smaller batch size";
  if (estimate.data > 0) text += ", streaming the data";
  text += " or a smaller model needs less";
  throw Error(text);
}

std::uint64_t parse_memory_size(std::string_view text) {
  const std::string shown(text);
  const auto bad = [&]() -> std::uint64_t {
    throw Error("'" + shown +
                "' is not a memory size: give a number of bytes with an optional unit k, M, G "
                "or T (1024-based), e.g. 8G or 512M");
  };
  std::size_t end = 0;
  while (end < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.')) {
    ++end;
  }
  if (end == 0) return bad();
  double number = 0.0;
  const auto [stop, error] = std::from_chars(text.data(), text.data() + end, number);
  if (error != std::errc() || stop != text.data() + end) return bad();
  std::string unit;
  for (const char c : text.substr(end)) {
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (unit.ends_with("ib"))
    unit.resize(unit.size() - 2);
  else if (unit.size() == 2 && unit.back() == 'b')
    unit.resize(1);
  else if (unit == "b")
    unit.clear();
  double scale = 1.0;
  if (unit == "k")
    scale = 1024.0;
  else if (unit == "m")
    scale = 1024.0 * 1024.0;
  else if (unit == "g")
    scale = 1024.0 * 1024.0 * 1024.0;
  else if (unit == "t")
    scale = 1024.0 * 1024.0 * 1024.0 * 1024.0;
  else if (!unit.empty())
    return bad();
  const double bytes = std::ceil(number * scale);
  if (!(bytes >= 1.0) || bytes > 1.8e19) return bad();
  return static_cast<std::uint64_t>(bytes);
}

std::string format_bytes(std::uint64_t bytes) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  if (unit == 0) {
    std::snprintf(text, sizeof text, "%llu bytes", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(text, sizeof text, "%.2f %s", value, units[unit]);
  }
  return text;
}

}  // namespace shardprop
