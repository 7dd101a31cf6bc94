// The `audit` command line: assembles the verbs; each verb's work lives in its own module.
#include <CLI/CLI.hpp>

#include "reproduce/cli/cli.h"
#include "common/version.h"

int main(int argc, char** argv) {
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
      "Exit codes: 0 ok, 1 a verdict/regression/verification failed, 2 bad input."};
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; any usage error is bad input: exit 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
