// `audit run RECIPE`: re-executes a recipe with real training, metered into the ledger.
#include <cstdlib>
#include <cstdio>
#include <optional>

#include <CLI/CLI.hpp>

#include "ledger/store/merge.h"  // resolve_node_rank
#include "reproduce/cli/cli.h"
#include "common/errors.h"
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
      "failed, with its seconds.\n"
      "Several processes (docs/distributed.md): --nproc N trains with N ranks on this machine\n"
      "(Gloo on the CPU, NCCL on CUDA) as train.parallelism says (ddp or fsdp_full_shard); this\n"
      "process is rank 0, drives the pipeline and alone writes the ledger, with every rank's\n"
      "meters. --distributed takes the rank from torchrun's environment, for several nodes.");
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
  static std::optional<int> nproc;
  static bool distributed = false;
  static int master_port = 0;
  cmd->add_option("--nproc", nproc,
                  "Train with N processes on this machine (N ranks; this one is rank 0 and starts\n"
                  "the others; one CUDA device each with --device cuda). train.parallelism must\n"
                  "be ddp or fsdp_full_shard");
  cmd->add_flag("--distributed", distributed,
                "Take this rank's place from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,\n"
                "MASTER_ADDR, MASTER_PORT): `torchrun --nnodes 2 --nproc-per-node 8 ... audit run\n"
                "RECIPE --distributed`. Global rank 0 drives and writes the ledger");
  cmd->add_option("--master-port", master_port,
                  "With --nproc: the TCP port rank 0 serves the group's store on (default: a free\n"
                  "one); a port in use is refused");
  cmd->add_flag("--quiet", g.quiet, "No progress lines");
  cmd->footer(
      "Examples:\n"
      "  audit run recipes/s1-mini.toml                      the s1 miniature on this CPU (~10 min)\n"
      "  audit run recipes/s1-mini.toml --set eval.seeds=1   one seed instead of three\n"
      "  audit run recipes/s1-mini.toml --device cuda --set base.hidden=256\n"
      "  audit run recipes/s1-launch.toml --set launch.workdir=$HOME/s1   s1's sft.sh, metered\n"
      "  srun --nodes 2 audit run r.toml --node-rank $SLURM_NODEID --ledger n$SLURM_NODEID.db\n"
      "  audit run recipes/s1-mini.toml --nproc 2 --set train.parallelism=ddp   2 ranks, Gloo\n"
      "  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:29400 --no-python \\\n"
      "      audit run r.toml --device cuda --distributed             16 ranks, NCCL\n"
      "Then: audit report --out report.html\n\n"
      "Exit codes: 0 the run succeeded; 1 a [launch] command failed or was stopped (the run is in\n"
      "the ledger, failed, with its seconds), or a rank failed or was killed (every rank stops; the run is\n"
      "failed, with every rank's seconds); 2 bad input (recipe, --set; before any ledger row);\n"
      "3 unexpected failure (the run is marked failed in the ledger).");
  cmd->callback([&g] {
    run_and_exit("run", [&g] {
      o.sets = g.sets;
      o.seed = g.seed;
      o.ledger = g.ledger;
      o.device = g.device;
      o.quiet = g.quiet;
      if (nproc && *nproc < 1)
        throw InputError("--nproc", 0, 0, "nproc",
                         "must be at least 1, not " + std::to_string(*nproc));
      if (nproc && distributed)
        throw InputError("--nproc", 0, 0, "nproc",
                         "--nproc starts the ranks itself; --distributed takes them from "
                         "torchrun's environment: give one of them");
      if (master_port != 0 && nproc.value_or(1) <= 1)
        throw InputError("--master-port", 0, 0, "master-port",
                         "goes with --nproc N (N > 1); under torchrun the port is MASTER_PORT");
      o.nproc = nproc.value_or(1);
      o.distributed = distributed;
      o.master_port = master_port;
      // What every other rank is started with: the same recipe, overrides, seed, device and
      // meter interval.
      o.worker_args = {o.recipe_path};
      for (const auto& s : o.sets) o.worker_args.insert(o.worker_args.end(), {"--set", s});
      if (o.seed >= 0) o.worker_args.insert(o.worker_args.end(), {"--seed", std::to_string(o.seed)});
      o.worker_args.insert(o.worker_args.end(),
                           {"--device", o.device, "--meter-interval",
                            std::to_string(o.meter_interval_s), "--quiet", "--distributed"});
      if (distributed) {
        // Under torchrun, one ledger from global rank 0: the node ranks it exports
        // (GROUP_RANK) are not a multi-ledger run.
        if (const char* r = std::getenv("RANK"); r && std::string(r) != "0")
          return pipeline::run_worker(o);
      } else {
        const auto node = ledger::resolve_node_rank(node_rank, nnodes, ledger::process_env());
        o.node_rank = node.rank;
        o.nnodes = node.nnodes;
        o.node_from = node.from;
      }
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
