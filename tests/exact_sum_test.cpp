// ExactSum: the sum of doubles rounded once, whatever the order of the values, the split into
// parts and the order of the merges; checked against a correctly rounded reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "base/exact_sum.hpp"
#include "shardprop/error.hpp"

using shardprop::detail::ExactSum;

namespace {

// The correctly rounded sum (ties to even): Shewchuk's exact partials with the final rounding of
// CPython's math.fsum. A slow, independent reference; no partial sum may overflow.
double reference_sum(const std::vector<double>& values) {
  std::vector<double> partials;
  for (double x : values) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < partials.size(); ++i) {
      double y = partials[i];
      if (std::fabs(x) < std::fabs(y)) std::swap(x, y);
      const double high = x + y;
      const double low = y - (high - x);
      if (low != 0.0) partials[kept++] = low;
      x = high;
    }
    partials.resize(kept);
    partials.push_back(x);
  }
  if (partials.empty()) return 0.0;
  std::size_t n = partials.size();
  double high = partials[--n];
  double low = 0.0;
  while (n > 0) {
    const double x = high;
    const double y = partials[--n];
    high = x + y;
    low = y - (high - x);
    if (low != 0.0) break;
  }
  // The partials below `low` decide a tie: round away from it when they point the same way.
  if (n > 0 && ((low < 0.0 && partials[n - 1] < 0.0) || (low > 0.0 && partials[n - 1] > 0.0))) {
    const double y = low * 2.0;
    const double x = high + y;
    if (y == x - high) high = x;
  }
  return high;
}

// Random mantissa and sign; the biased exponent uniform in [lowest, highest] (0: subnormals).
double random_double(std::mt19937_64& rng, int lowest, int highest) {
  const auto biased =
      static_cast<std::uint64_t>(std::uniform_int_distribution<int>(lowest, highest)(rng));
  const std::uint64_t mantissa = rng() & ((std::uint64_t{1} << 52) - 1);
  const std::uint64_t sign = rng() & 1;
  return std::bit_cast<double>(sign << 63 | biased << 52 | mantissa);
}

// `count` random doubles, then the negatives of most of them, shuffled: the exact sum is the sum
// of the few left unpaired, far below the largest values.
std::vector<double> cancelling_doubles(std::mt19937_64& rng, std::size_t count, int lowest,
                                       int highest) {
  std::vector<double> values;
  for (std::size_t i = 0; i < count; ++i) values.push_back(random_double(rng, lowest, highest));
  std::vector<double> negated;
  for (const double v : values) {
    if (rng() % 8 != 0) negated.push_back(-v);
  }
  values.insert(values.end(), negated.begin(), negated.end());
  std::shuffle(values.begin(), values.end(), rng);
  return values;
}

ExactSum sum_of(const std::vector<double>& values) {
  ExactSum sum;
  for (const double v : values) sum.add(v);
  return sum;
}

std::uint64_t bits(double x) { return std::bit_cast<std::uint64_t>(x); }

}  // namespace

TEST_CASE("an exact sum keeps what double addition loses", "[exact_sum]") {
  SECTION("a small term survives between huge ones that cancel") {
    CHECK(sum_of({1e300, 1.0, -1e300}).value() == 1.0);
    CHECK(sum_of({1e308, 1e-308, -1e308}).value() == 1e-308);
  }
  SECTION("a sum beyond the double range in the middle comes back") {
    const double max = std::numeric_limits<double>::max();
    CHECK(sum_of({max, max, -max}).value() == max);
    CHECK(sum_of({max, max}).value() == std::numeric_limits<double>::infinity());
    CHECK(sum_of({-max, -max}).value() == -std::numeric_limits<double>::infinity());
  }
  SECTION("subnormals add exactly") {
    const double tiny = std::numeric_limits<double>::denorm_min();
    CHECK(sum_of({tiny, tiny, tiny}).value() == 3 * tiny);
    CHECK(sum_of({std::numeric_limits<double>::min(), -tiny}).value() ==
          std::nextafter(std::numeric_limits<double>::min(), 0.0));
  }
  SECTION("the one rounding is to nearest, ties to even") {
    const double half_ulp = std::ldexp(1.0, -53);
    CHECK(sum_of({1.0, half_ulp}).value() == 1.0);
    CHECK(sum_of({1.0, half_ulp, std::numeric_limits<double>::denorm_min()}).value() ==
          std::nextafter(1.0, 2.0));
    const double odd = std::nextafter(1.0, 2.0);
    CHECK(sum_of({odd, half_ulp}).value() == std::nextafter(odd, 2.0));
    CHECK(sum_of({-odd, -half_ulp}).value() == -std::nextafter(odd, 2.0));
  }
  SECTION("nothing, and zeros of either sign, sum to +0") {
    CHECK(bits(ExactSum{}.value()) == bits(0.0));
    CHECK(bits(sum_of({-0.0, -0.0}).value()) == bits(0.0));
    CHECK(bits(sum_of({1.5, -1.5}).value()) == bits(0.0));
  }
}

TEST_CASE("an exact sum is the correctly rounded sum", "[exact_sum]") {
  // Biased exponent ranges: subnormals and the smallest normals, a moderate range, and (nearly)
  // the whole range, kept low enough that the reference's partial sums cannot overflow.
  const auto [lowest, highest] =
      GENERATE(table<int, int>({{0, 2}, {1000, 1046}, {0, 2030}, {900, 1100}}));
  CAPTURE(lowest, highest);
  std::mt19937_64 rng(static_cast<std::uint64_t>(lowest * 4096 + highest));
  for (int trial = 0; trial < 50; ++trial) {
    CAPTURE(trial);
    std::vector<double> values;
    if (trial % 2 == 0) {
      for (int i = 0; i < 1000; ++i) values.push_back(random_double(rng, lowest, highest));
    } else {
      values = cancelling_doubles(rng, 1000, lowest, highest);
    }
    const double expected = reference_sum(values);
    const double actual = sum_of(values).value();
    CAPTURE(expected, actual);
    CHECK(bits(actual) == bits(expected));
  }
}

TEST_CASE("order, split into parts and merge order do not change an exact sum's bits",
          "[exact_sum][determinism]") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 40; ++trial) {
    CAPTURE(trial);
    std::vector<double> values = cancelling_doubles(rng, 3000, 0, 2040);
    const ExactSum whole = sum_of(values);
    const auto parts = static_cast<std::size_t>(1 + rng() % 8);
    CAPTURE(parts);
    std::shuffle(values.begin(), values.end(), rng);
    std::vector<std::size_t> cuts{0, values.size()};
    for (std::size_t p = 1; p < parts; ++p) cuts.push_back(rng() % (values.size() + 1));
    std::sort(cuts.begin(), cuts.end());
    std::vector<ExactSum> sums;
    for (std::size_t p = 0; p + 1 < cuts.size(); ++p) {
      sums.push_back(
          sum_of(std::vector<double>(values.begin() + cuts[p], values.begin() + cuts[p + 1])));
    }
    std::shuffle(sums.begin(), sums.end(), rng);
    ExactSum merged;
    for (const ExactSum& s : sums) merged.merge(s);
    CHECK(merged.serialize() == whole.serialize());
    CHECK(bits(merged.value()) == bits(whole.value()));
  }
}

TEST_CASE("ten million adds of one value are exact", "[exact_sum]") {
  // 0.1 = m·2^−56 and −0.3 = −m'·2^−54 exactly, with 53-bit m, m': the exact totals are
  // integers of up to 80 bits, converted once (correctly rounded) to double.
  __extension__ using Int128 = __int128;
  constexpr std::int64_t kAdds = 10'000'000;
  const auto m_tenth = static_cast<std::int64_t>(std::ldexp(0.1, 56));
  const auto m_three_tenths = static_cast<std::int64_t>(std::ldexp(0.3, 54));
  REQUIRE(std::ldexp(static_cast<double>(m_tenth), -56) == 0.1);
  REQUIRE(std::ldexp(static_cast<double>(m_three_tenths), -54) == 0.3);

  SECTION("one value") {
    ExactSum sum;
    for (std::int64_t i = 0; i < kAdds; ++i) sum.add(0.1);
    const double expected = std::ldexp(static_cast<double>(Int128{m_tenth} * kAdds), -56);
    CHECK(sum.value() == expected);
  }
  SECTION("two values of opposite signs, interleaved") {
    ExactSum sum;
    for (std::int64_t i = 0; i < kAdds; ++i) {
      sum.add(0.1);
      sum.add(-0.3);
    }
    const Int128 total = (Int128{m_tenth} - 4 * Int128{m_three_tenths}) * kAdds;
    CHECK(sum.value() == std::ldexp(static_cast<double>(total), -56));
  }
}

TEST_CASE("an exact sum survives serialization", "[exact_sum]") {
  std::mt19937_64 rng(11);
  const std::vector<double> values = cancelling_doubles(rng, 500, 0, 2040);
  const ExactSum sum = sum_of(values);
  const auto words = sum.serialize();
  STATIC_REQUIRE(ExactSum::kSerializedWords == 68);
  STATIC_REQUIRE(sizeof(ExactSum) <= 600);
  const ExactSum copy = ExactSum::deserialize(words);
  CHECK(copy.serialize() == words);
  CHECK(bits(copy.value()) == bits(sum.value()));

  SECTION("and keeps adding afterwards") {
    ExactSum continued = ExactSum::deserialize(words);
    continued.add(1e300);
    continued.add(-1e300);
    continued.add(0.5);
    ExactSum expected = sum;
    expected.add(0.5);
    CHECK(continued.serialize() == expected.serialize());
  }
  SECTION("words it did not write are rejected") {
    auto digit_too_large = words;
    digit_too_large[3] = std::uint64_t{1} << 32;
    CHECK_THROWS_AS(ExactSum::deserialize(digit_too_large), shardprop::Error);
    auto unknown_flag = words;
    unknown_flag.back() = 8;
    CHECK_THROWS_AS(ExactSum::deserialize(unknown_flag), shardprop::Error);
  }
}

TEST_CASE("non-finite values make an exact sum non-finite for good", "[exact_sum]") {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  SECTION("an infinity of one sign is the sum, whatever finite values follow") {
    CHECK(sum_of({1.0, inf, -1e308, -1e308}).value() == inf);
    CHECK(sum_of({-inf, 1e308, 1e308}).value() == -inf);
  }
  SECTION("a NaN, or infinities of both signs, make NaN") {
    CHECK(std::isnan(sum_of({1.0, nan, 2.0}).value()));
    CHECK(std::isnan(sum_of({inf, -inf}).value()));
    CHECK(std::isnan(sum_of({-nan, inf}).value()));
  }
  SECTION("merging and serialization carry it") {
    ExactSum positive = sum_of({inf, 3.0});
    const ExactSum negative = sum_of({-inf});
    CHECK(ExactSum::deserialize(positive.serialize()).value() == inf);
    positive.merge(negative);
    CHECK(std::isnan(positive.value()));
    CHECK(std::isnan(ExactSum::deserialize(positive.serialize()).value()));
  }
  SECTION("NaNs of any payload give the same bits") {
    const double payload = std::bit_cast<double>(std::uint64_t{0xfff0000000000123});
    CHECK(bits(sum_of({payload}).value()) == bits(sum_of({nan}).value()));
  }
}
