// Build identity recorded with every run: version and the git commit the binary was built from.
#include "reproduce/version.h"
namespace audit {
const char* version() { return "0.1.0"; }
const char* git_commit() { return AUDIT_GIT_COMMIT; }
}  // namespace audit
