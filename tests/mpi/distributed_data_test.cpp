// Reading a CSV file across ranks: each rank parses only the records that start in its share of
// the bytes, and the collective steps make every rank's part agree with a read of the whole
// (rows, class labels, standardization, the validation split), bitwise.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "shardprop/communicator.hpp"
#include "shardprop/dataset_part.hpp"

namespace {

using shardprop::Communicator;
using shardprop::CsvOptions;
using shardprop::Dataset;
using shardprop::DatasetPart;

// A file rank 0 writes and every rank then reads (the sum is a collective call: no rank passes
// it before rank 0 has written).
template <class Write>
std::filesystem::path shared_file(const Communicator& comm, const std::string& name,
                                  Write&& write) {
  // Named after rank 0's process, so that jobs run side by side (ctest -j) keep apart.
  const std::int64_t job = comm.broadcast(static_cast<std::int64_t>(::getpid()), 0);
  const auto path = std::filesystem::temp_directory_path() / (std::to_string(job) + "_" + name);
  if (comm.rank() == 0) {
    std::ofstream out(path);
    write(out);
  }
  comm.sum(0);
  return path;
}

void remove_shared_file(const Communicator& comm, const std::filesystem::path& path) {
  comm.sum(0);  // every rank is done with it
  if (comm.rank() == 0) std::filesystem::remove(path);
}

void write_rows(std::ofstream& out, int rows) {
  std::mt19937 rng(9);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  out << "id,note,a,b,label\n";
  const char* labels[] = {"cat", "dog", "emu"};
  for (int i = 0; i < rows; ++i) {
    // A quoted field with a line break and a comma: record boundaries are not line starts.
    out << i << ",\"line one\nline, two\"," << 1e6f + noise(rng) << ',' << noise(rng) << ','
        << labels[rng() % 3] << '\n';
  }
}

bool same_bits(const std::vector<float>& a, const float* b, std::size_t n) {
  // memcmp may not be given the null data() of an empty vector, even for 0 bytes.
  return a.size() == n && (n == 0 || std::memcmp(a.data(), b, n * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("ranks read disjoint parts of a CSV file that put together are read_csv's rows",
          "[mpi]") {
  const Communicator world = Communicator::mpi_world();
  constexpr int kRows = 5000;
  const auto path = shared_file(world, "shardprop_mpi_data.csv",
                                [](std::ofstream& out) { write_rows(out, kRows); });
  CsvOptions csv;
  csv.ignore = {"id", "note"};
  csv.target_kind = shardprop::TargetKind::classes;
  const Dataset whole = shardprop::read_csv(path, csv);
  const DatasetPart part = shardprop::read_csv_part(path, csv, world);

  SECTION("each rank parses about its share of the rows, and they are the whole's") {
    CHECK(part.total_rows == kRows);
    const double share = static_cast<double>(kRows) / world.size();
    CHECK(static_cast<double>(part.rows.rows) > 0.9 * share);
    CHECK(static_cast<double>(part.rows.rows) < 1.1 * share);
    const auto x = static_cast<std::size_t>(part.first_row) * 2;
    CHECK(same_bits(part.rows.features, whole.features.data() + x, part.rows.features.size()));
    CHECK(same_bits(part.rows.targets, whole.targets.data() + part.first_row,
                    part.rows.targets.size()));
    CHECK(part.rows.class_names == whole.class_names);
    CHECK(world.sum(part.rows.rows) == kRows);
  }
  SECTION("the standardization is the whole's, bitwise") {
    const shardprop::Standardization mine = shardprop::fit_standardization(part, world);
    const shardprop::Standardization all = shardprop::Standardization::fit(whole);
    CHECK(std::memcmp(mine.mean.data(), all.mean.data(), 2 * sizeof(float)) == 0);
    CHECK(std::memcmp(mine.scale.data(), all.scale.data(), 2 * sizeof(float)) == 0);
  }
  SECTION("a streamed part, counted and standardized in one pass, matches too") {
    std::unique_ptr<shardprop::CsvStream> stream = shardprop::open_csv_stream_part(
        path, csv, world, shardprop::collect_class_names(path, csv, world), 4096);
    shardprop::Standardization fitted;
    const shardprop::StreamPart streamed = shardprop::scan_stream_part(*stream, world, &fitted);
    CHECK(streamed.first_row == part.first_row);
    CHECK(streamed.rows == part.rows.rows);
    CHECK(streamed.total_rows == kRows);
    CHECK(fitted.mean == shardprop::Standardization::fit(whole).mean);
    CHECK(fitted.scale == shardprop::Standardization::fit(whole).scale);
  }
  SECTION("the validation split holds out the same rows on any rank count") {
    const auto [train, held_out] = shardprop::split_validation(part, 0.2, 3, world);
    CHECK(train.total_rows + held_out.total_rows == kRows);
    const auto [train_whole, held_out_whole] =
        shardprop::split_validation(shardprop::whole_dataset(whole), 0.2, 3, Communicator());
    CHECK(held_out.total_rows == held_out_whole.total_rows);
    const auto x = static_cast<std::size_t>(held_out.first_row) * 2;
    CHECK(same_bits(held_out.rows.features, held_out_whole.rows.features.data() + x,
                    held_out.rows.features.size()));
  }
  remove_shared_file(world, path);
}

TEST_CASE("a malformed record fails the read on every rank with its rank, line and column",
          "[mpi]") {
  const Communicator world = Communicator::mpi_world();
  const auto path = shared_file(world, "shardprop_mpi_bad.csv", [](std::ofstream& out) {
    out << "a,b,y\n";
    for (int i = 0; i < 999; ++i) out << i << ",1,0\n";
    out << "999,oops,1\n";  // line 1001, the last record: the last rank's part
  });
  CsvOptions csv;
  csv.target_kind = shardprop::TargetKind::numeric;
  const std::string expected =
      (world.size() > 1 ? "rank " + std::to_string(world.size() - 1) + ": " : std::string()) +
      path.string() + ":1001:5";
  CHECK_THROWS_WITH(shardprop::read_csv_part(path, csv, world), Catch::StartsWith(expected));
  remove_shared_file(world, path);
}

TEST_CASE("mean and median imputation fit on parts equal the whole's fit, bitwise", "[mpi]") {
  const Communicator world = Communicator::mpi_world();
  // 6,000 rows: a wide normal, small integers with long runs of ties at the middle, and a
  // column sorted by row, so each rank's rows (and a stream's first block) sample it badly;
  // about 5% of the feature cells missing.
  const auto path = shared_file(world, "shardprop_mpi_missing.csv", [](std::ofstream& out) {
    std::mt19937 rng(5);
    std::normal_distribution<float> wide(3.0f, 500.0f);
    out << "a,b,c,y\n";
    for (int i = 0; i < 6000; ++i) {
      const auto cell = [&](auto value) {
        if (rng() % 20 == 0) {
          out << "NA";
        } else {
          out << value;
        }
      };
      cell(wide(rng));
      out << ',';
      cell(static_cast<int>(rng() % 5) - 2);
      out << ',';
      cell(i * 0.25);
      out << ',' << i % 3 << '\n';
    }
  });
  const shardprop::MissingPolicy policy =
      GENERATE(shardprop::MissingPolicy::mean, shardprop::MissingPolicy::median);
  CAPTURE(shardprop::to_string(policy));
  CsvOptions csv;
  csv.target_kind = shardprop::TargetKind::numeric;
  csv.missing = policy;
  const shardprop::Imputation whole =
      shardprop::Imputation::fit(shardprop::read_csv(path, csv), policy);
  SECTION("parts in memory") {
    const DatasetPart part = shardprop::read_csv_part(path, csv, world);
    const shardprop::Imputation mine = shardprop::fit_imputation(part, policy, world);
    CHECK(same_bits(mine.fill, whole.fill.data(), whole.fill.size()));
  }
  SECTION("streamed parts, in small blocks") {
    std::unique_ptr<shardprop::CsvStream> stream =
        shardprop::open_csv_stream_part(path, csv, world, {}, 4096);
    const shardprop::Imputation mine = shardprop::fit_imputation(*stream, policy, world);
    CHECK(same_bits(mine.fill, whole.fill.data(), whole.fill.size()));
  }
  remove_shared_file(world, path);
}
