// The two-proportion z-test (see two_proportion.h).
#include "suites/stats/two_proportion.h"

#include <cmath>

namespace audit::stats {

TwoProportionTest two_proportion_test(int64_t correct_a, int64_t n_a, int64_t correct_b,
                                      int64_t n_b) {
  TwoProportionTest t;
  if (n_a <= 0 || n_b <= 0) return t;
  t.p_a = double(correct_a) / double(n_a);
  t.p_b = double(correct_b) / double(n_b);
  t.diff = t.p_b - t.p_a;
  const double p = double(correct_a + correct_b) / double(n_a + n_b);
  const double se = std::sqrt(p * (1 - p) * (1.0 / double(n_a) + 1.0 / double(n_b)));
  if (se <= 0) return t;
  t.z = t.diff / se;
  t.p_value = std::erfc(std::fabs(t.z) / std::sqrt(2.0));  // 2 * (1 - Phi(|z|))
  t.significant = std::fabs(t.z) > kZ95;
  return t;
}

}  // namespace audit::stats
