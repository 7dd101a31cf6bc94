// The one SHA-256 of the project: lowercase hex of the digest of bytes.
#pragma once

#include <string>

namespace audit {
std::string sha256_hex(const std::string& bytes);
}  // namespace audit
