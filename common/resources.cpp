// Shipped files found at run time (see resources.h).
#include "common/resources.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace audit {
namespace fs = std::filesystem;

std::string executable_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

std::vector<std::string> share_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("AUDIT_SHARE_DIR"); env != nullptr && *env != '\0')
    dirs.emplace_back(env);
  const fs::path exe = executable_dir();
  dirs.push_back((exe / "share" / "audit").string());
  dirs.push_back((exe.parent_path() / "share" / "audit").lexically_normal().string());
  return dirs;
}

std::string resource_path(const std::string& relative) {
  std::string looked;
  for (const auto& d : share_dirs()) {
    const fs::path p = fs::path(d) / relative;
    std::error_code ec;
    if (fs::exists(p, ec)) return p.string();
    looked += (looked.empty() ? "" : ", ") + d;
  }
  throw std::runtime_error("cannot find the shipped file " + relative + " (looked in " + looked +
                           "; set AUDIT_SHARE_DIR to the folder holding recipes/ and peers/)");
}

}  // namespace audit
