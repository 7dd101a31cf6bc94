// The venv's tools beside its Python; see venv_tools.h.
#include "tests/support/venv_tools.h"

#include <unistd.h>

#include "tests/support/support.h"

namespace audit::testing {

std::string venv_tool(const std::string& name) {
  const std::string py = python();
  const size_t slash = py.rfind('/');
  if (slash == std::string::npos) return "";
  const std::string path = py.substr(0, slash + 1) + name;
  return access(path.c_str(), X_OK) == 0 ? path : "";
}

}  // namespace audit::testing
