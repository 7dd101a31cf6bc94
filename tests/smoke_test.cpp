// Placeholder so the core test binary links while modules land; replaced by module tests.
#include <gtest/gtest.h>
TEST(Smoke, Builds) { EXPECT_EQ(1 + 1, 2); }
