// Verbs whose capability has not landed yet: they exist, explain, and exit 2. No fake output.
// When a verb lands, its module defines add_<verb>_command and its stub here is deleted.
#include <cstdio>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "reproduce/cli/cli.h"

namespace audit::cli {
namespace {
void pending(CLI::App& app, const char* verb, const char* what) {
  auto* cmd = app.add_subcommand(verb, std::string(what) + " [not built yet]");
  cmd->allow_extras();
  cmd->callback([verb] {
    std::fprintf(stderr, "audit %s: not built yet in this version; see the open issues\n", verb);
    std::exit(2);
  });
}
}  // namespace

void add_dashboard_command(CLI::App& app, GlobalOptions&) { pending(app, "dashboard", "CI regression dashboard across runs"); }

}  // namespace audit::cli
