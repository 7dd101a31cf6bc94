// The command line's shared pieces: global options and one add_*_command per verb. Each verb is
// defined in the module that owns its work; reproduce/cli/main.cpp only assembles them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace CLI { class App; }
namespace audit::ledger { class Ledger; }

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

// One per verb, each in its cmd_<verb>.cpp. Each registers a subcommand whose callback runs the
// verb and exits with its code. The torch-free verbs (reproduce/cli):
void add_estimate_command(CLI::App& app, GlobalOptions& g);
void add_report_command(CLI::App& app, GlobalOptions& g);
void add_verdicts_command(CLI::App& app, GlobalOptions& g);
void add_dashboard_command(CLI::App& app, GlobalOptions& g);
void add_ledger_command(CLI::App& app, GlobalOptions& g);
void add_check_command(CLI::App& app, GlobalOptions& g);
void add_tokenize_command(CLI::App& app, GlobalOptions& g);
// `audit model` (cmd_model.cpp): a parent whose torch-free subcommand is `inspect`; returns the
// parent so that audit-torch can add its LibTorch subcommands (`compare`) under it.
CLI::App* add_model_command(CLI::App& app, GlobalOptions& g);
// The verbs that need LibTorch (reproduce/cli_torch), linked into `audit-torch` only:
void add_run_command(CLI::App& app, GlobalOptions& g);
void add_replay_command(CLI::App& app, GlobalOptions& g);
void add_bench_command(CLI::App& app, GlobalOptions& g);
// `audit model compare` (cmd_model_compare.cpp), added under the `model` parent that
// add_model_command returns: our logits against transformers' on the same ids.
void add_model_compare_command(CLI::App& model, GlobalOptions& g);

// The torch-free `audit` binary does not load LibTorch (it starts in milliseconds). It lists
// the LibTorch verbs in --help and hands them, with every argument, to `audit-torch` beside it.
struct TorchVerb {
  const char* name;
  const char* summary;  // one line, shown by `audit --help`
};
inline constexpr TorchVerb kTorchVerbs[] = {
    {"run", "Re-execute a recipe with real training, metered into the ledger (LibTorch)"},
    {"replay", "Time the claimed model's layers on this hardware and extrapolate (LibTorch)"},
    {"bench", "Benchmarks: the trainer against PyTorch eager (LibTorch)"},
};
// Subcommands of a torch-free parent verb that need LibTorch (`audit model compare`).
struct TorchSubcommand {
  const char* verb;
  const char* name;
  const char* summary;
};
inline constexpr TorchSubcommand kTorchSubcommands[] = {
    {"model", "compare", "Compare a checkpoint's logits with transformers' (LibTorch)"},
};
bool is_torch_verb(const char* arg);
// True when argv names a LibTorch verb, or a LibTorch subcommand of a torch-free verb
// (argv[1] = "model", argv[2] = "compare"); options before the subcommand are not looked past.
bool needs_torch(int argc, char** argv);
// Lists the LibTorch verbs as subcommands that hand over to audit-torch.
void add_torch_verb_forwarders(CLI::App& app);
// Lists the LibTorch subcommands of `verb` (already added to app) the same way.
void add_torch_subcommand_forwarders(CLI::App& verb);
// Replaces this process with audit-torch (same arguments). On failure prints why and exits 2.
[[noreturn]] void exec_torch_binary(char** argv);

// The report renderer, for verbs below reports/ that attach the HTML report (`audit ledger
// export --format mlflow`). reports/cli sets it when it registers the report verb (the layers
// keep reproduce/ from including reports/); while unset, such verbs ask for --report FILE.
using ReportRenderer = std::function<std::string(const ledger::Ledger& l, int64_t run_id)>;
void set_report_renderer(ReportRenderer r);
const ReportRenderer& report_renderer();

// Helper for verbs: runs fn, mapping audit::InputError and ledger errors to exit 2 with the
// message on stderr, and exits the process with fn's return value.
[[noreturn]] void run_and_exit(const char* verb, const std::function<int()>& fn);

}  // namespace audit::cli
