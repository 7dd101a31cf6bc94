// Errors that map to exit codes. Bad input (recipe, JSONL, checkpoint, ledger) -> exit 2 with a
// message naming the file, the line (and column when known) and the key.
#pragma once

#include <stdexcept>
#include <string>

namespace audit {

inline constexpr int kExitOk = 0;
inline constexpr int kExitVerdictFailed = 1;  // a verdict or regression failed, verify found tampering
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitUnexpected = 3;     // an unexpected failure (a bug, a full disk, an
                                              // unwritable output): message on stderr

struct InputError : std::runtime_error {
  std::string file;
  long line = 0;    // 1-based; 0 = unknown
  long column = 0;  // 1-based; 0 = unknown
  std::string key;  // dotted key path, e.g. "train.lr", or JSONL field name
  InputError(std::string file_, long line_, long column_, std::string key_, const std::string& what)
      : std::runtime_error(format(file_, line_, column_, key_, what)),
        file(std::move(file_)), line(line_), column(column_), key(std::move(key_)) {}

  static std::string format(const std::string& f, long l, long c, const std::string& k,
                            const std::string& w) {
    std::string s = f.empty() ? std::string("<input>") : f;
    if (l > 0) s += ":" + std::to_string(l);
    if (l > 0 && c > 0) s += ":" + std::to_string(c);
    s += ": ";
    if (!k.empty()) s += "'" + k + "': ";
    return s + w;
  }
};

}  // namespace audit
