// The `audit` command line: assembles the verbs; each verb's work lives in its own module.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#include "reproduce/cli/cli.h"
#include "common/errors.h"
#include "common/version.h"
#include "reproduce/launch/launch.h"  // the hidden supervisor verb of [launch]

int main(int argc, char** argv) {
  // `audit __launch-supervisor ...`: started by audit itself to run a [launch] command (never
  // listed in the help); it must not go through the CLI or exec audit-torch.
  if (argc >= 2 && std::strcmp(argv[1], audit::launch::kSupervisorVerb) == 0)
    return audit::launch::supervisor_main(argc, argv);
#ifndef AUDIT_TORCH_VERBS
  // The torch-free binary: verbs that train, replay or benchmark run in audit-torch.
  if (audit::cli::needs_torch(argc, argv)) audit::cli::exec_torch_binary(argv);
#endif
  CLI::App app{
      "audit: re-execute a low-cost training claim for real, meter every GPU- and CPU-second\n"
      "into a SQLite ledger, and report its honest total cost and generalization.\n\n"
      "Examples:\n"
      "  audit estimate recipes/s1.toml            paper-only audit of the s1 claim\n"
      "  audit run recipes/s1-mini.toml            re-execute s1 in miniature on this CPU\n"
      "  audit report --out report.html            HTML report of the latest run\n"
      "  audit ledger verify                       check the ledger's hash chain\n\n"
      "Every verb that prints results takes --json (one JSON document on stdout). Verbs that\n"
      "read a ledger (report, verdicts, ledger) refuse a missing --ledger file with exit 2;\n"
      "run and replay create it."};
  app.footer(audit::cli::kExitCodesHelp);
  app.set_version_flag("--version", std::string(audit::version()) + " (" + audit::git_commit() + ")");
  app.require_subcommand(1);
  app.fallthrough();
  audit::cli::GlobalOptions g;
#ifdef AUDIT_TORCH_VERBS
  audit::cli::add_run_command(app, g);
  audit::cli::add_replay_command(app, g);
  audit::cli::add_bench_command(app, g);
#else
  audit::cli::add_torch_verb_forwarders(app);
#endif
  audit::cli::add_estimate_command(app, g);
  audit::cli::add_report_command(app, g);
  audit::cli::add_verdicts_command(app, g);
  audit::cli::add_dashboard_command(app, g);
  audit::cli::add_diff_command(app, g);
  audit::cli::add_ledger_command(app, g);
  audit::cli::add_check_command(app, g);
  audit::cli::add_tokenize_command(app, g);
  [[maybe_unused]] CLI::App* model = audit::cli::add_model_command(app, g);
#ifndef AUDIT_TORCH_VERBS
  audit::cli::add_torch_subcommand_forwarders(*model);
#else
  audit::cli::add_model_compare_command(*model, g);
#endif
  // An unknown verb or sub-verb names itself and the closest known one: exit 2.
  if (const int code = audit::cli::check_command_names(app, argc, argv); code >= 0) return code;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; any usage error is bad input: exit 2.
    return app.exit(e) == 0 ? audit::kExitOk : audit::kExitBadInput;
  } catch (...) {
    // Verbs map their own errors (run_and_exit); anything escaping them is unexpected: exit 3.
    std::string message;
    const int code = audit::cli::exit_code_for(std::current_exception(), "", &message);
    std::fprintf(stderr, "%s\n", message.c_str());
    return code;
  }
  return audit::kExitOk;
}
