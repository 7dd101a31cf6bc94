// The Python peer of the benchmarks: which interpreter runs the PyTorch-eager side
// (tests/golden/bench_train.py, bench_layer.py) and how its arguments are quoted for the shell.
#pragma once

#include <cstdlib>
#include <string>

namespace audit {

// $AUDIT_PYTHON, else the venv ci/setup.sh makes.
inline std::string default_python() {
  const char* p = std::getenv("AUDIT_PYTHON");
  return (p != nullptr && *p != '\0') ? p : "/root/.cache/audit/venv/bin/python3";
}

// s in single quotes for /bin/sh, embedded quotes escaped.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace audit
