// The HTML report in a real browser: writes the report of the synthetic run (tests/support/synthetic_run.h)
// and opens it in headless Chromium (Debian's `chromium`, --headless --no-sandbox --disable-gpu).
// Fails on any console message (script error, CSP violation, failed load), on a missing chart in
// the rendered DOM, or on a blank screenshot; then renders it again in emulated dark mode. The
// screenshots are kept at $AUDIT_BUILD_DIR/report_screenshot.png and report_screenshot_dark.png
// for a human to look at. Skips when chromium is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ledger/store/ledger.h"
#include "reports/html/html_report.h"
#include "tests/support/browser.h"
#include "tests/support/support.h"
#include "tests/support/synthetic_run.h"  // add_synthetic_run

namespace {
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Headless Chromium, its console problems and PNG sizes: tests/support/browser.h.
using audit::testing::Browser;
using audit::testing::chromium_binary;
using audit::testing::console_problems;
using audit::testing::png_size;

// Browser::run with a page path.
int run(const Browser& b, const fs::path& page, const std::string& flags, const std::string& tag) {
  return b.run(page.string(), flags, tag);
}

size_t count_of(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t i = s.find(needle); i != std::string::npos; i = s.find(needle, i + 1)) ++n;
  return n;
}

// The HTML of one <section id="...">, from the dumped DOM.
std::string section(const std::string& dom, const std::string& id) {
  auto a = dom.find("<section id=\"" + id + "\"");
  if (a == std::string::npos) return "";
  auto b = dom.find("</section>", a);
  return dom.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

TEST(ReportBrowser, RendersInHeadlessChromiumWithoutErrors) {
  const std::string bin = chromium_binary();
  if (bin.empty())
    GTEST_SKIP() << "chromium is not installed (ci/setup.sh installs Debian's chromium)";
  const audit::testing::TempDir tmp("audit_report_browser");
  const fs::path dir = tmp.path();
  Browser b{bin, dir.string()};

  // The detector must see a console error when there is one (a test that cannot fail is none).
  const fs::path probe = dir / "probe.html";
  std::ofstream(probe) << "<!DOCTYPE html><html><body><p>probe</p><script>"
                          "console.error('audit-probe-1729');</script></body></html>";
  run(b, probe, "--dump-dom", "probe");
  ASSERT_NE(b.out("probe").find("probe"), std::string::npos)
      << "chromium produced no DOM for the probe page:\n"
      << b.err("probe");
  ASSERT_NE(b.err("probe").find("audit-probe-1729"), std::string::npos)
      << "console messages are not captured from chromium's stderr; cannot check the report:\n"
      << b.err("probe");

  const fs::path page = dir / "report.html";
  {
    audit::ledger::Ledger l((dir / "audit.db").string());
    int64_t run =
        audit::testing::add_synthetic_run(l, true, 0.05);  // hostile text included
    audit::reports::write_report(l, run, page.string());
  }

  // 1. Screenshot.
  const fs::path shot = dir / "report.png";
  int rc = run(b, page, "--screenshot=" + shot.string() + " --window-size=1280,2400", "shot");
  EXPECT_EQ(rc, 0) << b.err("shot");
  ASSERT_TRUE(fs::exists(shot)) << b.err("shot");
  const std::string png = slurp(shot);
  auto [w, h] = png_size(png);
  EXPECT_EQ(w, 1280u);
  EXPECT_EQ(h, 2400u);
  // A blank 1280x2400 page compresses to a few KB; text and charts need far more.
  EXPECT_GT(png.size(), 60000u) << "screenshot looks blank";
  auto problems = console_problems(b.err("shot"));
  EXPECT_TRUE(problems.empty()) << "console: " << problems.front();

  // 2. The rendered DOM: every chart present with content.
  rc = run(b, page, "--dump-dom", "dom");
  EXPECT_EQ(rc, 0) << b.err("dom");
  const std::string dom = b.out("dom");
  ASSERT_NE(dom.find("</html>"), std::string::npos) << b.err("dom");
  for (const char* id : {"costs", "generalization", "budget", "loss"}) {
    std::string s = section(dom, id);
    ASSERT_FALSE(s.empty()) << "section #" << id << " missing";
    EXPECT_NE(s.find("<svg"), std::string::npos) << "no chart in #" << id;
    EXPECT_NE(s.find("<text"), std::string::npos) << "chart in #" << id << " has no labels";
  }
  EXPECT_NE(section(dom, "costs").find("<rect"), std::string::npos);
  EXPECT_NE(section(dom, "generalization").find("<circle"), std::string::npos);
  EXPECT_NE(section(dom, "loss").find("<polyline"), std::string::npos);
  // Escaped hostile text never became an element; the one script is the print helper, which
  // the page's CSP allows by its hash (a wrong hash would log "Refused to execute").
  EXPECT_EQ(count_of(dom, "<script"), 1u);
  EXPECT_NE(dom.find("beforeprint"), std::string::npos);
  EXPECT_EQ(dom.find("<img"), std::string::npos);
  problems = console_problems(b.err("dom"));
  EXPECT_TRUE(problems.empty()) << "console: " << problems.front();

  // 3. Dark mode: the flags make prefers-color-scheme match "dark" (checked on a probe page
  // that reports matchMedia), and the report renders under them without a console message.
  const std::string dark_flags =
      "--force-dark-mode --blink-settings=preferredColorScheme=0 ";
  const fs::path dprobe = dir / "dark-probe.html";
  std::ofstream(dprobe) << "<!DOCTYPE html><html><body><p id=p>?</p><script>"
                           "document.getElementById('p').textContent='scheme-'+"
                           "(matchMedia('(prefers-color-scheme: dark)').matches?'dark':'light');"
                           "</script></body></html>";
  run(b, dprobe, dark_flags + "--dump-dom", "dark-probe");
  EXPECT_NE(b.out("dark-probe").find("scheme-dark"), std::string::npos)
      << "chromium did not emulate dark mode:\n"
      << b.out("dark-probe") << b.err("dark-probe");
  const fs::path dark_shot = dir / "report-dark.png";
  rc = run(b, page, dark_flags + "--screenshot=" + dark_shot.string() + " --window-size=1280,2400",
             "dark");
  EXPECT_EQ(rc, 0) << b.err("dark");
  ASSERT_TRUE(fs::exists(dark_shot)) << b.err("dark");
  EXPECT_GT(slurp(dark_shot).size(), 60000u) << "dark screenshot looks blank";
  EXPECT_NE(slurp(dark_shot), png) << "dark mode changed nothing on the page";
  problems = console_problems(b.err("dark"));
  EXPECT_TRUE(problems.empty()) << "console (dark): " << problems.front();

  std::error_code ec;
  fs::copy_file(shot, fs::path(audit::testing::build_dir()) / "report_screenshot.png",
                fs::copy_options::overwrite_existing, ec);
  fs::copy_file(dark_shot, fs::path(audit::testing::build_dir()) / "report_screenshot_dark.png",
                fs::copy_options::overwrite_existing, ec);
  fs::copy_file(page, fs::path(audit::testing::build_dir()) / "report_synthetic.html",
                fs::copy_options::overwrite_existing, ec);
}

}  // namespace
