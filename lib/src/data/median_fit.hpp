// The exact median of each feature over rows that may be spread over chunks of a stream and over
// ranks (NaN, a missing value, left out), for the median imputation. Leaves out the other
// policies (imputation.cpp) and talking between processes (ImputationRows::gather).
#pragma once

#include <vector>

#include "data/imputation_fit.hpp"
#include "shardprop/dataset.hpp"

namespace shardprop::detail {

// Some of a process's rows for a median's sample, features only: one from each stretch of
// ceil(rows/limit) rows, at a place hashed from the stretch's start, where the limit takes about
// 2^19 values (4,096 to 32,768 rows): a larger sample brackets the middle closer, so the pass
// collects fewer values, but costs its selection time.
Dataset sample_rows(const Dataset& data);

// Per feature, the middle value, or the mean of the two middle ones (in double, rounded once to
// float): bitwise the same for any chunking and process count. One pass when the sample's middle
// values bracket the data's (counting around them, then selecting among the few values
// collected), else four more of an exact radix selection (one byte of each value's order key per
// pass). Throws Error naming a feature with no value.
std::vector<float> fit_medians(const ImputationRows& rows);

}  // namespace shardprop::detail
