// The project venv's command-line tools (torchrun, accelerate, ...) for the tests that launch a
// claimant-style command, found beside the venv's Python (tests/support/support.h python()).
#pragma once

#include <string>

namespace audit::testing {

// The venv's executable `name` (e.g. "torchrun"): the file of that name in the folder of
// python(), when it is executable; else "" (the caller fails or skips saying so).
std::string venv_tool(const std::string& name);

}  // namespace audit::testing
