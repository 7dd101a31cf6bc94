// Confidence intervals for accuracies: the one Wilson interval of the project, used by the
// evaluation suites and the verdicts.
#pragma once

#include <cstdint>

namespace audit::stats {

struct Interval {
  double low = 0, high = 0;
};
// Wilson score interval for correct of n (95% by default); {0, 1} when n == 0.
Interval wilson(int64_t correct, int64_t n, double z = 1.959963984540054);

}  // namespace audit::stats
