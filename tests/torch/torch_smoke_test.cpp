#include <gtest/gtest.h>
#include <torch/torch.h>
TEST(TorchSmoke, Matmul) { auto a = torch::ones({2, 2}); EXPECT_EQ((a.mm(a)).sum().item<float>(), 8.f); }
