// The command line's shared pieces: global options and one add_*_command per verb. Each verb is
// defined in the module that owns its work; reproduce/main.cpp only assembles them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace CLI { class App; }

namespace audit::cli {

struct GlobalOptions {
  std::string ledger = "audit.db";        // --ledger PATH
  std::string device = "cpu";             // --device cpu|cuda
  std::vector<std::string> sets;          // --set section.key=value (repeatable, applied last)
  int64_t seed = -1;                      // --seed N (-1: the recipe's)
  std::string out;                        // --out PATH
  bool quiet = false;                     // --quiet: no progress lines
};

// Adds the options above to a subcommand (each verb takes those that apply to it).
void add_ledger_option(CLI::App& cmd, GlobalOptions& g);
void add_recipe_options(CLI::App& cmd, GlobalOptions& g);  // --set, --seed
void add_device_option(CLI::App& cmd, GlobalOptions& g);
void add_out_option(CLI::App& cmd, GlobalOptions& g, const std::string& help);

// One per verb. Each registers a subcommand whose callback runs the verb and exits with its code.
void add_run_command(CLI::App& app, GlobalOptions& g);        // reproduce/torch/cmd_run.cpp
void add_estimate_command(CLI::App& app, GlobalOptions& g);   // reproduce/cmd_estimate.cpp
void add_replay_command(CLI::App& app, GlobalOptions& g);     // reproduce/torch/cmd_replay.cpp
void add_report_command(CLI::App& app, GlobalOptions& g);     // reports/cmd_report.cpp
void add_dashboard_command(CLI::App& app, GlobalOptions& g);  // reports/cmd_dashboard.cpp
void add_ledger_command(CLI::App& app, GlobalOptions& g);     // ledger/cmd_ledger.cpp
void add_bench_command(CLI::App& app, GlobalOptions& g);      // reproduce/torch/cmd_bench.cpp
void add_check_command(CLI::App& app, GlobalOptions& g);      // reproduce/cmd_check.cpp

// Helper for verbs: runs fn, mapping audit::InputError and ledger errors to exit 2 with the
// message on stderr, and exits the process with fn's return value.
[[noreturn]] void run_and_exit(const char* verb, const std::function<int()>& fn);

}  // namespace audit::cli
