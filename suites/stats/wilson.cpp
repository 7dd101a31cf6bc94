// Wilson score interval for a binomial proportion.
#include "suites/stats/wilson.h"

#include <algorithm>
#include <cmath>

namespace audit::stats {

Interval wilson(int64_t correct, int64_t n, double z) {
  if (n <= 0) return {0, 1};
  double p = double(correct) / double(n), nn = double(n), z2 = z * z;
  double denom = 1 + z2 / nn;
  double center = (p + z2 / (2 * nn)) / denom;
  double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
  // At the ends the exact bound is p itself; rounding must not put it on the wrong side.
  double low = correct == 0 ? 0.0 : std::min(p, std::max(0.0, center - half));
  double high = correct == n ? 1.0 : std::max(p, std::min(1.0, center + half));
  return {low, high};
}

}  // namespace audit::stats
