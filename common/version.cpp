// Build identity recorded with every run: version and the git commit the binary was built from.
#include "common/version.h"
namespace audit {
const char* version() { return AUDIT_VERSION; }
const char* git_commit() { return AUDIT_GIT_COMMIT; }
}  // namespace audit
