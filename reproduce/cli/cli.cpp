// Shared command-line pieces: the common options and the error-to-exit-code mapping.
#include "reproduce/cli/cli.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <utility>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "ledger/store/ledger.h"
#include "common/errors.h"
#include "common/resources.h"

namespace audit::cli {

void add_ledger_option(CLI::App& cmd, GlobalOptions& g, LedgerMissing missing) {
  cmd.add_option("--ledger", g.ledger,
                 missing == LedgerMissing::create
                     ? "SQLite ledger file to write; created (with its folder's permission) if "
                       "missing"
                     : "SQLite ledger file to read; a missing file is refused with exit 2 "
                       "naming it (nothing is created)")
      ->capture_default_str()
      ->envname("AUDIT_LEDGER");
}

void add_ledger_option(CLI::App& cmd, GlobalOptions& g) {
  cmd.add_option("--ledger", g.ledger, "SQLite ledger file")
      ->capture_default_str()
      ->envname("AUDIT_LEDGER");
}

void add_recipe_options(CLI::App& cmd, GlobalOptions& g) {
  cmd.add_option("--set", g.sets,
                 "Override one recipe key after the file, e.g. --set train.lr=2e-5 (repeatable)")
      ->type_name("SECTION.KEY=VALUE");
  cmd.add_option("--seed", g.seed, "Override the recipe's seed");
}

void add_device_option(CLI::App& cmd, GlobalOptions& g) {
  cmd.add_option("--device", g.device, "Where to compute: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
}

void add_out_option(CLI::App& cmd, GlobalOptions& g, const std::string& help) {
  cmd.add_option("--out", g.out, help);
}

bool is_torch_verb(const char* arg) {
  for (const auto& v : kTorchVerbs)
    if (std::strcmp(arg, v.name) == 0) return true;
  return false;
}

bool needs_torch(int argc, char** argv) {
  if (argc < 2) return false;
  if (is_torch_verb(argv[1])) return true;
  if (argc < 3) return false;
  for (const auto& s : kTorchSubcommands)
    if (std::strcmp(argv[1], s.verb) == 0 && std::strcmp(argv[2], s.name) == 0) return true;
  return false;
}

void exec_torch_binary(char** argv) {
  namespace fs = std::filesystem;
  const fs::path dir = executable_dir();
  const std::string path = (dir / "audit-torch").string();
  std::error_code ec;
  if (fs::exists(path, ec)) {
    argv[0] = const_cast<char*>(path.c_str());
    ::execv(path.c_str(), argv);
    std::fprintf(stderr, "audit %s: cannot start %s: %s\n", argv[1], path.c_str(),
                 std::strerror(errno));
    std::exit(kExitBadInput);
  }
  std::fprintf(stderr,
               "audit %s: this verb needs the LibTorch part of audit, audit-torch, which is not "
               "beside %s (was the build configured with -DAUDIT_TORCH=OFF?)\n",
               argv[1], dir.string().c_str());
  std::exit(kExitBadInput);
}

void add_torch_verb_forwarders(CLI::App& app) {
  for (const auto& v : kTorchVerbs) {
    auto* cmd = app.add_subcommand(v.name, v.summary);
    cmd->allow_extras();
    cmd->set_help_flag();  // `audit run --help` is answered by audit-torch
  }
}

void add_torch_subcommand_forwarders(CLI::App& verb) {
  for (const auto& s : kTorchSubcommands) {
    if (verb.get_name() != s.verb) continue;
    auto* cmd = verb.add_subcommand(s.name, s.summary);
    cmd->allow_extras();
    cmd->set_help_flag();  // answered by audit-torch
  }
}

int exit_code_for(const std::exception_ptr& e, const std::string& verb, std::string* message) {
  std::string m;
  int code = kExitUnexpected;
  try {
    std::rethrow_exception(e);
  } catch (const InputError& x) {
    m = "audit " + verb + ": error: " + x.what();
    code = kExitBadInput;
  } catch (const ledger::LedgerError& x) {
    m = "audit " + verb + ": ledger error: " + x.what();
    code = kExitBadInput;
  } catch (const CLI::ParseError& x) {
    m = "audit " + verb + ": usage error: " + x.what();
    code = kExitBadInput;
  } catch (const std::exception& x) {
    m = "audit " + verb + ": failed (unexpected, exit 3): " + x.what();
  } catch (...) {
    m = "audit " + verb + ": failed (unexpected, exit 3): an exception that is not a "
        "std::exception";
  }
  if (message) *message = m;
  return code;
}

namespace {
ReportRenderer& renderer_slot() {
  static ReportRenderer r;
  return r;
}
}  // namespace

void set_report_renderer(ReportRenderer r) { renderer_slot() = std::move(r); }
const ReportRenderer& report_renderer() { return renderer_slot(); }

void run_and_exit(const char* verb, const std::function<int()>& fn) {
  int code = kExitOk;
  try {
    code = fn();
  } catch (...) {
    std::string message;
    code = exit_code_for(std::current_exception(), verb, &message);
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", message.c_str());
  }
  std::fflush(stdout);
  std::exit(code);
}

std::string closest_name(const std::string& word, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::max<size_t>(3, word.size() / 2) + 1;
  for (const auto& k : known) {
    const size_t d = edit_distance(word, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best;
}

namespace {

// True when `arg` is an option of cmd (or of a parent, with fallthrough) that takes a value
// in the next argument ("--ledger PATH"; not "--ledger=PATH", not a flag).
bool takes_next_value(const CLI::App& cmd, const std::string& arg) {
  if (arg.size() < 2 || arg[0] != '-' || arg.find('=') != std::string::npos) return false;
  for (const CLI::App* a = &cmd; a; a = a->get_parent()) {
    const CLI::Option* o = nullptr;
    try {
      o = a->get_option_no_throw(arg);
    } catch (...) {
      o = nullptr;
    }
    if (o) return o->get_type_size_max() > 0;
  }
  return false;
}

}  // namespace

int check_command_names(CLI::App& app, int argc, char** argv) {
  CLI::App* cmd = &app;
  std::string path = "audit";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") return -1;
    if (!arg.empty() && arg[0] == '-') {
      if (takes_next_value(*cmd, arg)) ++i;
      continue;
    }
    // A positional word: a subcommand of cmd, or cmd's own argument.
    const auto subs = cmd->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty() || !cmd->get_options([](const CLI::Option* o) {
                             return o->get_positional();
                           }).empty() ||
        cmd->get_allow_extras())
      return -1;
    CLI::App* next = nullptr;
    std::vector<std::string> names;
    for (CLI::App* s : subs) {
      names.push_back(s->get_name());
      if (s->check_name(arg)) next = s;
    }
    if (!next) {
      const std::string near = closest_name(arg, names);
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      if (!near.empty())
        std::fprintf(stderr, "%s: unknown command '%s'. Did you mean '%s'?\n", path.c_str(),
                     arg.c_str(), near.c_str());
      else
        std::fprintf(stderr, "%s: unknown command '%s'. Known commands: %s.\n", path.c_str(),
                     arg.c_str(), known.c_str());
      std::fprintf(stderr, "Run '%s --help' for the commands and their options.\n", path.c_str());
      return kExitBadInput;
    }
    cmd = next;
    path += " " + next->get_name();
  }
  return -1;
}

JsonStdout::JsonStdout(bool active) {
  if (!active) return;
  std::fflush(stdout);
  saved_fd_ = ::dup(STDOUT_FILENO);
  if (saved_fd_ >= 0) ::dup2(STDERR_FILENO, STDOUT_FILENO);
}

JsonStdout::~JsonStdout() {
  if (saved_fd_ < 0) return;
  std::fflush(stdout);
  ::dup2(saved_fd_, STDOUT_FILENO);
  ::close(saved_fd_);
}

void JsonStdout::print(const nlohmann::json& j) {
  if (saved_fd_ < 0) return print_json(j);
  std::fflush(stdout);
  const std::string text = j.dump(2) + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(saved_fd_, text.data() + done, text.size() - done);
    if (n <= 0) throw std::runtime_error("cannot write the JSON to standard output");
    done += size_t(n);
  }
}

void print_json(const nlohmann::json& j) {
  const std::string text = j.dump(2);
  std::printf("%s\n", text.c_str());
}

}  // namespace audit::cli
