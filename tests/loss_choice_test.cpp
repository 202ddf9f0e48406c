// choose_loss: the loss `train --loss auto` picks from a file's first rows.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "shardprop/error.hpp"
#include "shardprop/loss_choice.hpp"
#include "test_util.hpp"

namespace {

using Catch::Matchers::Contains;
using shardprop::choose_loss;
using shardprop::CsvOptions;
using shardprop::Loss;
using shardprop::LossChoice;
using shardprop::test::TempDir;
using shardprop::test::write_text;

// A file of `rows` rows: a feature x, a text column colour, and the target y = target(row).
template <class Target>
std::string file_of(int rows, Target target) {
  std::string text = "x,colour,y\n";
  for (int r = 0; r < rows; ++r) {
    text += std::to_string(r) + "," + (r % 2 == 0 ? "red" : "blue") + "," + target(r) + "\n";
  }
  return text;
}

}  // namespace

TEST_CASE("choose_loss picks the loss from the target's first values", "[csv][loss]") {
  TempDir dir;
  const auto path = dir / "data.csv";
  CsvOptions options;
  options.categorical = {"colour"};

  SECTION("a few integer values are classes") {
    const int classes = GENERATE(2, 10, shardprop::kMaxAutoClasses);
    write_text(path, file_of(200, [&](int r) { return std::to_string(r % classes); }));
    const LossChoice choice = choose_loss(path, options);
    CHECK(choice.loss == Loss::xent);
    CHECK(choice.reason == "the target holds " + std::to_string(classes) + " integer values");
    CHECK_FALSE(choice.no_data_rows);
  }
  SECTION("more integer values than kMaxAutoClasses, one value, or fractions are numbers") {
    const int distinct = GENERATE(shardprop::kMaxAutoClasses + 1, 1);
    write_text(path, file_of(200, [&](int r) { return std::to_string(r % distinct); }));
    CHECK(choose_loss(path, options).loss == Loss::mse);
    write_text(path, file_of(200, [&](int r) { return std::to_string(r % 2) + ".5"; }));
    const LossChoice choice = choose_loss(path, options);
    CHECK(choice.loss == Loss::mse);
    CHECK(choice.reason == "the target holds numbers");
  }
  SECTION("labels are classes") {
    write_text(path, file_of(20, [](int r) { return r % 3 == 0 ? "cat" : "dog"; }));
    const LossChoice choice = choose_loss(path, options);
    CHECK(choice.loss == Loss::xent);
    CHECK(choice.reason == "the target holds labels");
  }
  SECTION("several targets are numbers") {
    write_text(path, file_of(20, [](int r) { return std::to_string(r % 2); }));
    options.targets = {"x", "y"};
    const LossChoice choice = choose_loss(path, options);
    CHECK(choice.loss == Loss::mse);
    CHECK(choice.reason == "several target columns");
  }
  SECTION("only the first rows count") {
    // 40 distinct integers in all, but the first block holds 2 of them.
    std::string text = file_of(100000, [](int r) { return std::to_string(r % 2); });
    text += file_of(40, [](int r) { return std::to_string(r); }).substr(11);  // no header
    write_text(path, text);
    REQUIRE(text.size() > shardprop::kLossChoiceBytes);
    CHECK(choose_loss(path, options).loss == Loss::xent);
  }
  SECTION("a file without data rows says so") {
    write_text(path, "x,colour,y\n");
    const LossChoice choice = choose_loss(path, options);
    CHECK(choice.no_data_rows);
    CHECK(choice.loss == Loss::mse);
  }
  SECTION("the read options apply: a missing cell is an error unless the policy says otherwise") {
    write_text(path, "x,colour,y\n1,red,0\n,blue,1\n3,red,2\n");
    CHECK_THROWS_WITH(choose_loss(path, options), Contains("data.csv:3:1"));
    options.missing = shardprop::MissingPolicy::drop;
    const LossChoice choice = choose_loss(path, options);
    CHECK(choice.loss == Loss::xent);
    CHECK(choice.reason == "the target holds 2 integer values");
  }
}
