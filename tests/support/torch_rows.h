// Rows of token ids (what the Python peers read as JSON lists) as an [N, T] int64 tensor, for
// the LibTorch tests that compare against those peers.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace audit::testing {

inline torch::Tensor rows_to_tensor(const std::vector<std::vector<int64_t>>& rows) {
  auto t = torch::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())},
                        torch::kLong);
  for (size_t r = 0; r < rows.size(); ++r)
    for (size_t c = 0; c < rows[r].size(); ++c) t[r][c] = rows[r][c];
  return t;
}

}  // namespace audit::testing
