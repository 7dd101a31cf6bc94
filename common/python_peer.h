// The Python peer of the benchmarks: which interpreter runs the PyTorch-eager side
// (tests/golden/bench_train.py, bench_layer.py), how its arguments are quoted for the shell, and
// how its one JSON result line is read back.
#pragma once

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace audit {

// $AUDIT_PYTHON, else the venv ci/setup.sh makes ($AUDIT_HOME/venv, AUDIT_HOME defaulting to
// ~/.cache/audit).
inline std::string default_python() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  if (!env("AUDIT_PYTHON").empty()) return env("AUDIT_PYTHON");
  const std::string home = !env("AUDIT_HOME").empty() ? env("AUDIT_HOME") : env("HOME") + "/.cache/audit";
  return home + "/venv/bin/python3";
}

// s in single quotes for /bin/sh, embedded quotes escaped.
inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Every line of a peer's output that is a JSON object, in order (the peers print one per job).
inline std::vector<nlohmann::json> json_object_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    const std::string line = out.substr(pos, end - pos);
    if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line));
    pos = end + 1;
  }
  return lines;
}

// Runs `command` (a peer script), and returns the last JSON object it printed on a line of its
// own. Throws std::runtime_error naming `what`, the command and its output when it cannot start,
// exits non-zero or prints no JSON.
inline nlohmann::json run_python_json(const std::string& command, const std::string& what) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot start " + command);
  std::string out;
  std::array<char, 4096> buf{};
  while (fgets(buf.data(), buf.size(), pipe.get()) != nullptr) out += buf.data();
  const int rc = pclose(pipe.release());
  if (rc != 0)
    throw std::runtime_error(what + " failed (exit " + std::to_string(rc) + "): " + command +
                             "\n" + out);
  // The last line that is a JSON object (a peer prints progress before it; the object itself
  // may nest).
  size_t end = out.size();
  while (end > 0) {
    size_t begin = out.rfind('\n', end - 1);
    begin = begin == std::string::npos ? 0 : begin + 1;
    const std::string line = out.substr(begin, end - begin);
    if (!line.empty() && line.front() == '{') {
      auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object()) return j;
    }
    end = begin == 0 ? 0 : begin - 1;
  }
  throw std::runtime_error("no JSON from " + command + ": " + out);
}

}  // namespace audit
