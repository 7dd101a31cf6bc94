// Files that ship with audit and are found at run time, never through a path compiled in: the
// shipped recipes and the PyTorch-eager peer scripts. Looked up, in order, under
//   $AUDIT_SHARE_DIR                       (an explicit override)
//   <dir of the executable>/share/audit    (a build tree: CMake links recipes/ and peers/ there)
//   <dir of the executable>/../share/audit (an installed tree: `make install`)
// so a binary works from any directory and after it is moved with its share folder.
#pragma once

#include <string>
#include <vector>

namespace audit {

// The directory of the running executable (from /proc/self/exe).
std::string executable_dir();
// The share folders above, in lookup order (existing or not).
std::vector<std::string> share_dirs();
// The full path of a shipped file, e.g. resource_path("recipes/s1-mini.toml") or
// resource_path("peers/bench_train.py"). Throws std::runtime_error naming every folder it
// looked in when the file is in none of them.
std::string resource_path(const std::string& relative);

}  // namespace audit
