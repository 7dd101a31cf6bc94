// A process that runs one launch stage into a ledger, for the tests that kill or interrupt the
// process running audit's side of a launch (tests/launch_test.cpp).
// Usage: launch_probe LEDGER SUPERVISOR GRACE_S -- ARGV...
// Prints "run <id>" when the run has begun, and at the end one JSON line with the outcome.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "reproduce/launch/launch.h"

int main(int argc, char** argv) {
  if (argc < 6 || std::string(argv[4]) != "--") {
    std::fprintf(stderr, "usage: launch_probe LEDGER SUPERVISOR GRACE_S -- ARGV...\n");
    return 2;
  }
  try {
    audit::ledger::Ledger l(argv[1]);
    audit::ledger::RunInfo r;
    r.name = "launch-probe";
    r.recipe_text = "[claim]\nname = \"launch-probe\"\n";
    const int64_t run = l.begin_run(r);
    std::printf("run %lld\n", static_cast<long long>(run));
    std::fflush(stdout);
    audit::launch::Command c;
    for (int i = 5; i < argc; ++i) c.argv.emplace_back(argv[i]);
    audit::launch::Limits lim;
    lim.supervisor = argv[2];
    lim.grace_s = std::atof(argv[3]);
    lim.interval_s = 0.2;
    const auto o = audit::launch::run_stage(l, run, "launch", c, lim, {});
    l.end_run(run, o.status == "succeeded" ? audit::ledger::RunStatus::succeeded
                                           : audit::ledger::RunStatus::failed);
    nlohmann::json j = {{"status", o.status}, {"exit_code", o.exit_code},
                        {"term_signal", o.term_signal}, {"stop_reason", o.stop_reason},
                        {"cpu_s", o.cpu_s}, {"stdout", o.stdout_kept}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "launch_probe: %s\n", e.what());
    return 1;
  }
}
