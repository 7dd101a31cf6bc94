// Headless Chromium for the page tests (see browser.h).
#include "tests/support/browser.h"

#include <sys/wait.h>

#include <cstdlib>
#include <sstream>

#include "tests/support/support.h"  // read_file

namespace audit::testing {

std::string chromium_binary() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    std::string cmd = std::string("command -v ") + name + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return name;
  }
  return "";
}

int Browser::run(const std::string& page, const std::string& flags, const std::string& tag) const {
  std::string cmd = "timeout 120 " + bin +
                    " --headless --no-sandbox --disable-gpu --no-first-run"
                    " --no-default-browser-check --disable-extensions --hide-scrollbars"
                    " --user-data-dir=" + dir + "/profile-" + tag +
                    " --enable-logging=stderr --v=0 " + flags + " file://" + page + " >" + dir +
                    "/" + tag + ".out 2>" + dir + "/" + tag + ".err";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string Browser::out(const std::string& tag) const {
  try {
    return read_file(dir + "/" + tag + ".out");
  } catch (...) {
    return "";
  }
}

std::string Browser::err(const std::string& tag) const {
  try {
    return read_file(dir + "/" + tag + ".err");
  } catch (...) {
    return "";
  }
}

std::vector<std::string> console_problems(const std::string& stderr_text) {
  std::vector<std::string> bad;
  std::istringstream in(stderr_text);
  std::string line;
  while (std::getline(in, line))
    if (line.find("CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos ||
        line.find("Refused to") != std::string::npos ||
        line.find("Failed to load") != std::string::npos)
      bad.push_back(line);
  return bad;
}

std::pair<uint32_t, uint32_t> png_size(const std::string& png) {
  static const std::string sig = "\x89PNG\r\n\x1a\n";
  if (png.size() < 24 || png.compare(0, 8, sig) != 0 || png.compare(12, 4, "IHDR") != 0)
    return {0, 0};
  auto be32 = [&](size_t o) {
    return (uint32_t(uint8_t(png[o])) << 24) | (uint32_t(uint8_t(png[o + 1])) << 16) |
           (uint32_t(uint8_t(png[o + 2])) << 8) | uint32_t(uint8_t(png[o + 3]));
  };
  return {be32(16), be32(20)};
}

}  // namespace audit::testing
