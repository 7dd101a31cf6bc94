// The `audit ledger` verb: list runs, show one run with its stages, metering and costs, verify
// the hash chain and invariants (exit 1 naming the first bad row), export a run (JSON, CSV,
// mllog lines, samples JSONL, an MLflow folder, CodeCarbon's emissions.csv, an lm-eval results
// JSON; docs/ledger.md), merge the node ledgers of a multi-node run into one run.
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

#include "ledger/store/ledger.h"
#include "reproduce/exports/exports.h"
#include "ledger/store/merge.h"
#include "reproduce/cli/cli.h"
#include "reproduce/verdicts/verdicts.h"  // store_verdicts: the merged run's verdicts
#include "common/errors.h"
#include "common/format.h"

namespace audit::cli {
namespace {

using ledger::Ledger;

double run_wall(const ledger::RunInfo& r) {
  double end = r.ended_at > 0 ? r.ended_at : r.heartbeat_at;
  return end - r.started_at;
}

// The ledger verbs read an existing ledger; a mistyped path must not create an empty one.
std::unique_ptr<Ledger> open_existing(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw ledger::LedgerError(path + ": no ledger file here (pass --ledger PATH, or run "
                                     "`audit run RECIPE` to create one)");
  return std::make_unique<Ledger>(path);
}

nlohmann::json run_json(const ledger::RunInfo& r) {
  return {{"id", r.id},
          {"name", r.name},
          {"status", ledger::to_string(r.status)},
          {"started_at", r.started_at},
          {"ended_at", r.ended_at},
          {"wall_s", run_wall(r)},
          {"recipe_path", r.recipe_path},
          {"recipe_sha256", r.recipe_sha256},
          {"host", r.host},
          {"git_commit", r.git_commit},
          {"device", r.device}};
}

int cmd_list(const GlobalOptions& g, bool as_json) {
  auto l = open_existing(g.ledger);
  auto runs = l->runs();
  if (as_json) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : runs) a.push_back(run_json(r));
    print_json({{"ledger", g.ledger}, {"runs", a}});
    return kExitOk;
  }
  if (runs.empty()) {
    std::printf("no runs in %s\n", g.ledger.c_str());
    return kExitOk;
  }
  std::printf("%5s  %-20s  %-9s  %-20s  %10s  %-12s\n", "id", "name", "status", "started (UTC)",
              "wall", "recipe sha");
  for (const auto& r : runs)
    std::printf("%5lld  %-20s  %-9s  %-20s  %10s  %-12s\n", static_cast<long long>(r.id),
                r.name.substr(0, 20).c_str(), ledger::to_string(r.status),
                text::utc(r.started_at).c_str(), text::duration(run_wall(r)).c_str(),
                r.recipe_sha256.substr(0, 12).c_str());
  return kExitOk;
}

int cmd_show(const GlobalOptions& g, const std::string& spec, bool as_json) {
  auto l = open_existing(g.ledger);
  int64_t id = ledger::resolve_run(*l, spec);
  if (as_json) {  // everything about the run: the same document as `ledger export --format json`
    std::printf("%s\n", nlohmann::json::parse(ledger::export_json(*l, id)).dump(2).c_str());
    return kExitOk;
  }
  auto r = *l->run(id);
  std::printf("run %lld: %s [%s]\n", static_cast<long long>(r.id), r.name.c_str(),
              ledger::to_string(r.status));
  std::printf("  recipe   %s  sha256 %s\n", r.recipe_path.empty() ? "-" : r.recipe_path.c_str(),
              r.recipe_sha256.c_str());
  std::printf("  host     %s  pid %lld  git %s  device %s\n", r.host.c_str(),
              static_cast<long long>(r.pid), r.git_commit.c_str(), r.device.c_str());
  if (r.multi_node())
    std::printf("  node     %s of %s  (%s)\n",
                r.node_rank >= 0 ? std::to_string(r.node_rank).c_str() : "all",
                r.nnodes > 0 ? std::to_string(r.nnodes).c_str() : "?", r.node_from.c_str());
  std::printf("  started  %s  ended %s  wall %s\n", text::utc(r.started_at).c_str(),
              r.ended_at > 0 ? text::utc(r.ended_at).c_str() : "(running)",
              text::duration(run_wall(r)).c_str());

  auto stages = l->stages(id);
  std::printf("\nstages (%zu)\n", stages.size());
  if (!stages.empty()) {
    std::printf("  %4s  %-12s  %-9s  %10s  %10s  %4s  %10s  %10s  %11s  %10s  %4s\n", "id",
                "name", "status", "wall_s", "cpu_s", "gpus", "gpu_s", "busy_s", "peak_mem",
                "energy_J", "node");
    double wall = 0, cpu = 0, gpu = 0, busy = 0;
    for (const auto& s : stages) {
      std::printf("  %4lld  %-12s  %-9s  %10.2f  %10.2f  %4d  %10.2f  %10.2f  %11s  %10s  %4s\n",
                  static_cast<long long>(s.id), s.name.substr(0, 12).c_str(), s.status.c_str(),
                  s.wall_s, s.cpu_s, s.gpu_count, s.gpu_s, s.gpu_busy_s,
                  text::bytes(s.gpu_peak_mem_bytes).c_str(),
                  s.power_metered ? text::fmt("%.1f", s.energy_j).c_str() : "not metered",
                  s.node >= 0 ? std::to_string(s.node).c_str() : "-");
      wall += s.wall_s;
      cpu += s.cpu_s;
      gpu += s.gpu_s;
      busy += s.gpu_busy_s;
    }
    std::printf("  %4s  %-12s  %-9s  %10.2f  %10.2f  %4s  %10.2f  %10.2f\n", "", "total", "",
                wall, cpu, "", gpu, busy);
  }

  auto costs = l->cost_items(id);
  std::printf("\ncost items (%zu)\n", costs.size());
  for (const auto& c : costs) {
    std::printf("  %-16s %-10s %g %s x %s/%s/%s = %s/%s/%s (low/mid/high)  %s\n",
                c.category.c_str(), ledger::to_string(c.provenance), c.quantity, c.unit.c_str(),
                text::money(c.price_low).c_str(), text::money(c.price_mid).c_str(),
                text::money(c.price_high).c_str(), text::money(c.quantity * c.price_low).c_str(),
                text::money(c.quantity * c.price_mid).c_str(), text::money(c.quantity * c.price_high).c_str(),
                c.description.c_str());
    if (!c.formula.empty()) std::printf("  %-16s formula: %s\n", "", c.formula.c_str());
    if (!c.source.empty()) std::printf("  %-16s source: %s\n", "", c.source.c_str());
  }

  auto evals = l->evals(id);
  if (!evals.empty()) {
    std::printf("\nevaluations (%zu)\n", evals.size());
    for (const auto& e : evals)
      std::printf("  %-6s %-12s %-16s %s seed %lld budget %lld: %lld/%lld = %.3f [%.3f, %.3f]\n",
                  e.model.c_str(), e.suite.c_str(), e.split.c_str(), e.ood ? "OOD" : "ID ",
                  static_cast<long long>(e.seed), static_cast<long long>(e.budget),
                  static_cast<long long>(e.correct), static_cast<long long>(e.n), e.score,
                  e.ci_low, e.ci_high);
  }
  auto verdicts = l->verdicts(id);
  if (!verdicts.empty()) {
    std::printf("\nverdicts (%zu)\n", verdicts.size());
    for (const auto& v : verdicts)
      std::printf("  [%s] %s: %s (claimed %s, measured %s)\n    %s\n", v.kind.c_str(),
                  v.claim.c_str(), v.verdict.c_str(), v.claimed.c_str(), v.measured.c_str(),
                  v.reason.c_str());
  }
  auto names = l->artifact_names(id);
  if (!names.empty()) {
    std::printf("\nartifacts:");
    for (const auto& n : names) std::printf(" %s", n.c_str());
    std::printf("\n");
  }
  std::printf("\nevents: %zu (audit ledger export %lld --format mllog)\n", l->events(id).size(),
              static_cast<long long>(id));
  return kExitOk;
}

int cmd_verify(const GlobalOptions& g, bool as_json) {
  auto l = open_existing(g.ledger);
  auto rep = l->verify();
  if (as_json) {
    print_json({{"ledger", g.ledger}, {"ok", rep.ok}, {"message", rep.message}});
    return rep.ok ? kExitOk : kExitVerdictFailed;
  }
  if (rep.ok) {
    std::printf("%s\n", rep.message.c_str());
    return kExitOk;
  }
  std::printf("ledger FAILED verification: %s\n", rep.message.c_str());
  return kExitVerdictFailed;
}

// Every evaluated completion of a run as JSONL, one line per sample (lm-eval's --log_samples
// rows), each with the suite, model, seed, thinking budget and waits it was generated under.
// The rows are the run's "samples/..." artifacts, written by the eval stage.
std::string export_samples(const ledger::Ledger& l, int64_t id) {
  std::string out;
  size_t n = 0;
  for (const auto& name : l.artifact_names(id)) {
    if (name.rfind("samples/", 0) != 0) continue;
    auto a = l.artifact(id, name);
    if (!a || !a->contains("samples")) continue;
    for (auto row : (*a)["samples"]) {
      nlohmann::json line = {{"artifact", name}};
      for (const char* k : {"suite", "kind", "model", "seed", "budget", "waits"})
        if (a->contains(k)) line[k] = (*a)[k];
      for (auto& [k, v] : row.items()) line[k] = v;
      out += line.dump() + "\n";
      ++n;
    }
  }
  if (n == 0)
    throw InputError(l.path(), 0, 0, "samples",
                     "run " + std::to_string(id) +
                         " stored no evaluated samples (runs with [[eval.suites]] do)");
  return out;
}

// Options of `ledger export` that only some formats take.
struct ExportOptions {
  std::string format = "json";
  std::string report;                  // --report FILE (mlflow)
  bool no_report = false;              // --no-report (mlflow)
  double carbon_intensity = -1;        // --carbon-intensity G_PER_KWH (codecarbon)
  std::string model;                   // --model NAME (lm-eval)
};

std::string read_file_or_throw(const std::string& path, const char* option) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path, 0, 0, option, "cannot open for reading");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// --format mlflow: a folder, not a stream.
int export_mlflow(const GlobalOptions& g, const ledger::Ledger& l, int64_t id,
                  const ExportOptions& o) {
  if (g.out.empty() || g.out == "-")
    throw InputError("--out", 0, 0, "--out",
                     "--format mlflow writes a tracking folder: pass --out DIR (e.g. mlruns)");
  exports::MlflowOptions mo;
  if (!o.report.empty()) {
    mo.report_html = read_file_or_throw(o.report, "--report");
    mo.report_name = std::filesystem::path(o.report).filename().string();
  } else if (!o.no_report) {
    if (!report_renderer())
      throw InputError("--report", 0, 0, "--report",
                       "this binary has no report renderer: pass --report FILE or --no-report");
    mo.report_html = report_renderer()(l, id);
  }
  const auto w = exports::write_mlflow(l, id, g.out, mo);
  std::fprintf(stderr,
               "wrote MLflow run %s (experiment %s) under %s: %zu params, %zu metrics (%zu points), "
               "%zu tags, artifacts:",
               w.run_id.c_str(), w.experiment_id.c_str(), g.out.c_str(), w.params, w.metrics,
               w.metric_points, w.tags);
  for (const auto& a : w.artifacts) std::fprintf(stderr, " %s", a.c_str());
  std::fprintf(stderr, "\nread it: MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri %s\n",
               g.out.c_str());
  return kExitOk;
}

int cmd_export(const GlobalOptions& g, const std::string& spec, const ExportOptions& o) {
  auto l = open_existing(g.ledger);
  int64_t id = ledger::resolve_run(*l, spec);
  const std::string& format = o.format;
  if (format == "mlflow") return export_mlflow(g, *l, id, o);
  if (!o.report.empty() || o.no_report)
    throw InputError("--report", 0, 0, "--report", "only --format mlflow attaches the report");
  if (o.carbon_intensity >= 0 && format != "codecarbon")
    throw InputError("--carbon-intensity", 0, 0, "--carbon-intensity",
                     "only --format codecarbon uses a carbon intensity");
  if (!o.model.empty() && format != "lm-eval")
    throw InputError("--model", 0, 0, "--model", "only --format lm-eval picks a model");
  std::string text;
  if (format == "json") text = ledger::export_json(*l, id);
  else if (format == "csv") text = ledger::export_csv(*l, id);
  else if (format == "samples") text = export_samples(*l, id);
  else if (format == "codecarbon")
    text = exports::export_codecarbon(*l, id, {o.carbon_intensity});
  else if (format == "lm-eval") text = exports::export_lm_eval(*l, id, o.model);
  else text = ledger::export_mllog(*l, id);
  if (g.out.empty() || g.out == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  }
  std::ofstream f(g.out, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(g.out + ": cannot open for writing (check the folder)");
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.close();
  if (!f) throw std::runtime_error(g.out + ": write failed (disk full?)");
  std::fprintf(stderr, "wrote %s (%zu bytes, run %lld, %s)\n", g.out.c_str(), text.size(),
               static_cast<long long>(id), format.c_str());
  return kExitOk;
}

// `audit ledger merge A.db B.db ... --out all.db`: the rules are in ledger/store/merge.h.
int cmd_merge(const std::vector<std::string>& paths, const std::vector<std::string>& runs,
              const std::string& out, bool force, bool quiet) {
  ledger::MergeOptions o;
  if (!runs.empty() && runs.size() != 1 && runs.size() != paths.size())
    throw InputError("--run", 0, 0, "--run",
                     "give one --run for every ledger (" + std::to_string(paths.size()) +
                         "), or one for all, not " + std::to_string(runs.size()));
  for (size_t i = 0; i < paths.size(); ++i)
    o.inputs.push_back({paths[i], runs.empty() ? "latest" : runs[runs.size() == 1 ? 0 : i]});
  o.out = out;
  o.force = force;
  size_t verdicts = 0;
  o.before_close = [&verdicts](Ledger& l, int64_t run) {
    reports::store_verdicts(l, run);
    verdicts = reports::current_verdicts(l, run).size();
  };
  const auto res = ledger::merge_ledgers(o);
  for (const auto& w : res.warnings) std::fprintf(stderr, "audit ledger merge: warning: %s\n", w.c_str());
  if (!quiet) {
    for (const auto& n : res.nodes)
      std::printf("node %d: %s run %lld (%s), %lld stages, %lld events\n", n.rank,
                  n.path.c_str(), static_cast<long long>(n.run_id), ledger::to_string(n.status),
                  static_cast<long long>(n.stages), static_cast<long long>(n.events));
    std::printf("merged into %s run %lld (%s): %lld stages, %lld events, %lld cost lines "
                "(%lld shared lines counted once), %lld eval rows from node %d, %lld verdicts "
                "recomputed\n",
                out.c_str(), static_cast<long long>(res.run_id), ledger::to_string(res.status),
                static_cast<long long>(res.stages), static_cast<long long>(res.events_out),
                static_cast<long long>(res.cost_items),
                static_cast<long long>(res.shared_costs_dropped),
                static_cast<long long>(res.evals), res.evals_from,
                static_cast<long long>(verdicts));
  }
  return kExitOk;
}

}  // namespace

void add_ledger_command(CLI::App& app, GlobalOptions& g) {
  auto* cmd = app.add_subcommand("ledger", "List, show, verify and export ledger runs");
  cmd->require_subcommand(1);
  cmd->fallthrough();
  add_ledger_option(*cmd, g, LedgerMissing::refuse);
  static bool as_json = false;
  cmd->footer(
      "Examples:\n"
      "  audit ledger list\n"
      "  audit ledger show latest --json\n"
      "  audit ledger verify --ledger audit.db\n"
      "  audit ledger export 3 --format mllog --out run3.mllog\n"
      "  audit ledger merge node0.db node1.db --out all.db\n\n"
      "A missing --ledger file is refused (exit 2, naming it); nothing is created.\n"
      "Exit codes: 0 ok; 1 `verify` found a bad row; 2 bad input (no such ledger or run);\n"
      "3 unexpected failure.");

  auto* list = cmd->add_subcommand("list", "Table of runs, newest first: id, name, status, "
                                           "start time, wall time, recipe SHA-256 prefix");
  add_ledger_option(*list, g, LedgerMissing::refuse);
  list->add_flag("--json", as_json, "Print the runs as JSON to stdout: {ledger, runs: [...]}");
  list->footer("Example:\n  audit ledger list --ledger audit.db");
  list->callback([&g] { run_and_exit("ledger list", [&] { return cmd_list(g, as_json); }); });

  static std::string show_run = "latest";
  auto* show = cmd->add_subcommand("show", "One run: recipe, host, stages with their metering "
                                           "(wall, CPU, GPU-seconds, busy, memory, energy), "
                                           "cost items, evaluations, verdicts");
  show->add_option("RUN", show_run, "Run id, or 'latest'")->capture_default_str();
  add_ledger_option(*show, g, LedgerMissing::refuse);
  show->add_flag("--json", as_json,
                 "Print the run as JSON to stdout (the document `ledger export --format json` "
                 "writes)");
  show->footer("Examples:\n  audit ledger show latest\n  audit ledger show 3 --ledger audit.db");
  show->callback(
      [&g] { run_and_exit("ledger show", [&] { return cmd_show(g, show_run, as_json); }); });

  auto* verify = cmd->add_subcommand(
      "verify",
      "Walk the events' hash chain and check every structured row against its event; exit 0 "
      "with 'ledger OK: N events, M rows checked', or exit 1 naming the first bad row (edited, "
      "deleted, inserted or reordered)");
  add_ledger_option(*verify, g, LedgerMissing::refuse);
  verify->add_flag("--json", as_json, "Print {ledger, ok, message} as JSON to stdout");
  verify->footer("Example:\n  audit ledger verify --ledger audit.db && echo intact");
  verify->callback(
      [&g] { run_and_exit("ledger verify", [&] { return cmd_verify(g, as_json); }); });

  static std::string export_run = "latest";
  static ExportOptions eo;
  auto* exp = cmd->add_subcommand(
      "export",
      "Export one run: json (everything, nested), csv (one table per section, each after a "
      "'# section' line), mllog (one ':::MLLOG {...}' line per event, MLPerf's line syntax), "
      "samples (JSONL), mlflow (an MLflow tracking folder), codecarbon (emissions.csv), lm-eval "
      "(a results JSON)");
  exp->add_option("RUN", export_run, "Run id, or 'latest'")->capture_default_str();
  exp->add_option("--format", eo.format,
                  "json | csv | mllog | samples (every evaluated completion as JSONL, like "
                  "lm-eval's --log_samples) | mlflow (needs --out DIR) | codecarbon | lm-eval")
      ->check(CLI::IsMember(
          {"json", "csv", "mllog", "samples", "mlflow", "codecarbon", "lm-eval"}))
      ->capture_default_str();
  add_out_option(*exp, g,
                 "Write to this file instead of standard output (mlflow: the tracking folder)");
  exp->add_option("--report", eo.report,
                  "mlflow: attach this HTML file as the report (default: render the run's "
                  "report, as `audit report` would)");
  exp->add_flag("--no-report", eo.no_report, "mlflow: attach no report");
  exp->add_option("--carbon-intensity", eo.carbon_intensity,
                  "codecarbon: grid carbon intensity in g CO2eq/kWh; without it the emissions "
                  "columns stay empty (the ledger has no grid data)")
      ->check(CLI::NonNegativeNumber);
  exp->add_option("--model", eo.model,
                  "lm-eval: whose eval rows to write (default: tuned, else the first model)");
  add_ledger_option(*exp, g, LedgerMissing::refuse);
  exp->footer(
      "Examples:\n"
      "  audit ledger export latest --format json > run.json\n"
      "  audit ledger export 3 --format mllog --out run3.mllog\n"
      "  audit ledger export latest --format samples --out samples.jsonl\n"
      "  audit ledger export latest --format mlflow --out mlruns\n"
      "  audit ledger export latest --format codecarbon --carbon-intensity 400 --out emissions.csv\n"
      "  audit ledger export latest --format lm-eval --model tuned --out results.json\n"
      "docs/ledger.md describes each format and what it was checked against.");
  exp->callback(
      [&g] { run_and_exit("ledger export", [&] { return cmd_export(g, export_run, eo); }); });

  static std::vector<std::string> merge_paths, merge_runs;
  static bool merge_force = false;
  auto* merge = cmd->add_subcommand(
      "merge",
      "Join the runs of a multi-node job (each node's `audit run --node-rank K` into its own "
      "ledger) into ONE run of a new ledger: each stage keeps its node, the hash chain is "
      "rebuilt, the node-metered cost lines are summed and the declared ones counted once, the "
      "verdicts recomputed");
  merge->add_option("LEDGER", merge_paths, "The node ledgers (two or more)")->required();
  merge->add_option("--run", merge_runs,
                    "Run to take: one for every ledger (in order) or one for all; an id or "
                    "'latest' (default: the latest run of each)");
  add_out_option(*merge, g, "The merged ledger to write (a new file)");
  merge->add_flag("--force", merge_force, "Replace --out when it exists (never an input)");
  merge->add_flag("--quiet", g.quiet, "Print only warnings");
  merge->footer(
      "Refused with exit 2, naming the file: fewer than two ledgers, --out that exists (without\n"
      "--force) or is an input, a ledger that fails verify, a run still running or without a\n"
      "node rank, runs of different recipes (sha256), two runs with the same node rank, a run\n"
      "declared as one of N nodes when not N ledgers are given.\n\n"
      "Examples:\n"
      "  audit ledger merge audit-node0.db audit-node1.db --out audit.db\n"
      "  audit ledger merge a.db b.db --run 3 --run 1 --out all.db --force\n"
      "Then: audit ledger verify --ledger audit.db && audit report --ledger audit.db");
  merge->callback([&g] {
    run_and_exit("ledger merge", [&] {
      if (g.out.empty()) throw InputError("--out", 0, 0, "--out", "give the merged ledger's path");
      return cmd_merge(merge_paths, merge_runs, g.out, merge_force, g.quiet);
    });
  });
}

}  // namespace audit::cli
