// Build identity: version string and git commit baked in at configure time.
#pragma once
namespace audit {
const char* version();
const char* git_commit();
}  // namespace audit
