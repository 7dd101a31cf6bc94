// `audit run RECIPE`: re-executes a recipe with real training, metered into the ledger.
#include <cstdio>
#include <optional>

#include <CLI/CLI.hpp>

#include "ledger/store/merge.h"  // resolve_node_rank
#include "reproduce/cli/cli.h"
#include "reproduce/pipeline/pipeline.h"

namespace audit::cli {

void add_run_command(CLI::App& app, GlobalOptions& g) {
  static pipeline::RunOptions o;
  auto* cmd = app.add_subcommand(
      "run",
      "Re-execute a recipe with real training (LibTorch; CUDA with --device cuda). Stages:\n"
      "pretrain (the base model, measured), distill (teacher traces), select (s1's quality,\n"
      "difficulty and diversity filters), sft (the claimed schedule, once per eval seed) and eval\n"
      "(base and tuned, in and out of distribution, with budget forcing). Every stage's wall,\n"
      "CPU and GPU seconds go into the ledger with the cost items and verdicts.\n"
      "A recipe with [launch] runs the claimant's own command instead (torchrun, accelerate, a\n"
      "script) as the final run, metering its whole process tree and every GPU, parsing its loss\n"
      "lines, stopping it at the budget caps, then evaluates the checkpoint it writes\n"
      "(docs/launch.md). Exit 1 when that command fails or is stopped: the run is in the ledger,\n"
      "failed, with its seconds.");
  cmd->add_option("recipe", o.recipe_path, "Recipe TOML file")->required()->check(CLI::ExistingFile);
  add_ledger_option(*cmd, g, LedgerMissing::create);
  add_recipe_options(*cmd, g);
  add_device_option(*cmd, g);
  cmd->add_option("--work-dir", o.work_dir, "Checkpoints directory (default: <ledger>.runs/<run id>)");
  cmd->add_option("--meter-interval", o.meter_interval_s, "Seconds between meter samples")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 60.0));
  static std::optional<int> node_rank, nnodes;
  cmd->add_option("--node-rank", node_rank,
                  "This node's rank (0-based) in a multi-node run; each node writes its own "
                  "ledger, joined by `audit ledger merge` (default: GROUP_RANK, NODE_RANK or "
                  "SLURM_NODEID when set)");
  cmd->add_option("--nnodes", nnodes,
                  "The number of nodes (default: GROUP_WORLD_SIZE or SLURM_NNODES with their "
                  "rank variable)");
  cmd->add_flag("--quiet", g.quiet, "No progress lines");
  cmd->footer(
      "Examples:\n"
      "  audit run recipes/s1-mini.toml                      the s1 miniature on this CPU (~10 min)\n"
      "  audit run recipes/s1-mini.toml --set eval.seeds=1   one seed instead of three\n"
      "  audit run recipes/s1-mini.toml --device cuda --set base.hidden=256\n"
      "  audit run recipes/s1-launch.toml --set launch.workdir=$HOME/s1   s1's sft.sh, metered\n"
      "  srun --nodes 2 audit run r.toml --node-rank $SLURM_NODEID --ledger n$SLURM_NODEID.db\n"
      "Then: audit report --out report.html\n\n"
      "Exit codes: 0 the run succeeded; 1 a [launch] command failed or was stopped (the run is in\n"
      "the ledger, failed, with its seconds); 2 bad input (recipe, --set; before any ledger row);\n"
      "3 unexpected failure (the run is marked failed in the ledger).");
  cmd->callback([&g] {
    run_and_exit("run", [&g] {
      o.sets = g.sets;
      o.seed = g.seed;
      o.ledger = g.ledger;
      o.device = g.device;
      o.quiet = g.quiet;
      const auto node = ledger::resolve_node_rank(node_rank, nnodes, ledger::process_env());
      o.node_rank = node.rank;
      o.nnodes = node.nnodes;
      o.node_from = node.from;
      try {
        int64_t id = pipeline::run(o);
        std::printf("run %lld succeeded; ledger %s\n", (long long)id, o.ledger.c_str());
        return 0;
      } catch (const pipeline::RunFailed& e) {
        std::fprintf(stderr, "audit run: run %lld failed: %s\n", (long long)e.run_id, e.what());
        std::printf("run %lld failed; ledger %s\n", (long long)e.run_id, o.ledger.c_str());
        return e.exit_code;
      }
    });
  });
}

}  // namespace audit::cli
