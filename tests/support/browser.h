// Headless Chromium for the page tests (tests/report_browser_test.cpp, dashboard_test.cpp): Debian's
// `chromium` run with --headless --no-sandbox --disable-gpu on a local file, its stderr logged, so
// that a test can fail on any console message (script error, CSP violation, failed load), read
// the rendered DOM, or check a screenshot. Tests skip when no chromium is installed.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace audit::testing {

// "chromium", "chromium-browser" or "google-chrome", the first on PATH; "" when none.
std::string chromium_binary();

struct Browser {
  std::string bin;
  std::string dir;  // where profiles and the .out / .err files of each run go
  // Runs chromium headless on `page` with extra flags (e.g. "--dump-dom", "--screenshot=P
  // --window-size=W,H"); stdout and stderr go to dir/TAG.out and dir/TAG.err. Its exit code.
  int run(const std::string& page, const std::string& flags, const std::string& tag) const;
  std::string out(const std::string& tag) const;
  std::string err(const std::string& tag) const;
};

// Console messages and page errors as Chromium logs them to stderr.
std::vector<std::string> console_problems(const std::string& stderr_text);

// Width and height from a PNG's IHDR chunk; {0, 0} when it is not a PNG.
std::pair<uint32_t, uint32_t> png_size(const std::string& png);

}  // namespace audit::testing
