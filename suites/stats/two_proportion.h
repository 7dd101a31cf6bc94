// Whether two accuracies differ by more than chance: the two-proportion z-test (pooled, two-sided)
// that `audit diff` and `audit dashboard` use to call a change in accuracy significant.
#pragma once

#include <cstdint>

namespace audit::stats {

// z at 95% two-sided (the same z the Wilson intervals use).
inline constexpr double kZ95 = 1.959963984540054;

struct TwoProportionTest {
  double p_a = 0, p_b = 0;  // correct / n of each
  double diff = 0;          // p_b - p_a
  double z = 0;             // diff / pooled standard error; 0 when the error is 0
  double p_value = 1;       // two-sided, from the normal distribution
  bool significant = false; // |z| > kZ95 (p < 0.05); false when either n is 0
};

// Two-proportion z-test of correct_a/n_a against correct_b/n_b with the pooled proportion
// p = (correct_a + correct_b) / (n_a + n_b): se = sqrt(p (1 - p) (1/n_a + 1/n_b)). Both at 0% or
// both at 100% give se = 0, z = 0: not significant.
TwoProportionTest two_proportion_test(int64_t correct_a, int64_t n_a, int64_t correct_b,
                                      int64_t n_b);

}  // namespace audit::stats
