// The command line's shared pieces: global options and one add_*_command per verb. Each verb is
// defined in the module that owns its work; reproduce/cli/main.cpp only assembles them.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/format.h"  // text::edit_distance

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

// The exit codes of every verb, as --help epilogues and docs/cli.md state them.
inline constexpr const char* kExitCodesHelp =
    "Exit codes: 0 ok; 1 a verdict, regression or verification failed (only where a flag such\n"
    "as --fail-on-verdict asks, or `ledger verify` finds tampering), or the audited [launch]\n"
    "command failed or was stopped (`run`; 130 when interrupted); 2 bad input (usage, recipe,\n"
    "missing ledger or run; the message names the file and key); 3 unexpected failure (an\n"
    "output that cannot be written, a bug; the message says what failed).";

// Adds the options above to a subcommand (each verb takes those that apply to it).
// What a verb does when the --ledger file does not exist, stated in its --help.
enum class LedgerMissing {
  create,  // the verb writes: the file is created (run, replay)
  refuse,  // the verb reads: exit 2 naming the file (report, verdicts, ledger, dashboard, diff)
};
void add_ledger_option(CLI::App& cmd, GlobalOptions& g, LedgerMissing missing);
// The same, for a verb that has not said (help: "SQLite ledger file").
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
void add_diff_command(CLI::App& app, GlobalOptions& g);  // reports/cli/cmd_diff.cpp
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

// Helper for verbs: runs fn, mapping audit::InputError and ledger errors to exit 2 and any other
// exception to exit 3 (exit_code_for) with the message on stderr, and exits the process with
// fn's return value.
[[noreturn]] void run_and_exit(const char* verb, const std::function<int()>& fn);

// The exit code of an exception that escaped a verb, and the line printed for it on stderr
// ("audit VERB: error: ..."): audit::InputError and ledger::LedgerError are bad input (2);
// CLI11's parse errors are usage errors (2); anything else, std::exception or not, is an
// unexpected failure (3).
int exit_code_for(const std::exception_ptr& e, const std::string& verb, std::string* message);

// ---- unknown verbs ----
using text::edit_distance;  // common/format.h
// The known name closest to `word` by edit distance ("" when none is within 3 edits or
// half the word's length, whichever is larger); ties go to the first in `known`.
std::string closest_name(const std::string& word, const std::vector<std::string>& known);
// Before parsing: the first word that is not an option must name one of app's subcommands, and
// so on down (`ledger lsit`), for every parent that takes no positional argument of its own.
// For an unknown one prints "audit: unknown command 'reprot'. Did you mean 'report'?" (or the
// known commands) on stderr and returns kExitBadInput; returns -1 when every name is known.
int check_command_names(CLI::App& app, int argc, char** argv);

// ---- --json ----
// `--json` on every verb that prints results means: print one JSON document to stdout and
// nothing else there. JsonStdout sends stdout to stderr while it lives (for verbs whose
// progress and tables are printed with printf), and print() writes to the real stdout.
class JsonStdout {
 public:
  explicit JsonStdout(bool active);
  ~JsonStdout();
  JsonStdout(const JsonStdout&) = delete;
  JsonStdout& operator=(const JsonStdout&) = delete;
  void print(const nlohmann::json& j);
  bool active() const { return saved_fd_ >= 0; }

 private:
  int saved_fd_ = -1;
};
// Prints j (indented 2) and a newline to stdout.
void print_json(const nlohmann::json& j);

}  // namespace audit::cli
