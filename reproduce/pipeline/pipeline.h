// The s1-style pipeline behind `audit run`: pretrain (or load_base) -> distill -> select (or data,
// for a JSONL training file) -> sft (per seed) -> eval (synthetic splits and benchmark suites),
// each stage metered into the ledger, then the cost roll-up and the verdicts.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace audit::pipeline {

struct RunOptions {
  std::string recipe_path;
  std::vector<std::string> sets;  // --set overrides (applied last)
  int64_t seed = -1;              // --seed
  std::string ledger = "audit.db";
  std::string device = "cpu";     // cpu | cuda
  std::string work_dir;           // checkpoints; "" = <ledger>.runs/<run id>
  bool quiet = false;
  double meter_interval_s = 1.0;
  // Several nodes (ledger/store/merge.h resolve_node_rank): this node's rank, the node count
  // (0 = not known) and where they came from; -1, 1, "" for a single-node run.
  int node_rank = -1;
  int nnodes = 1;
  std::string node_from;
  // Several processes (docs/distributed.md): --nproc N starts ranks 1..N-1 on this machine as
  // `run <worker_args> --distributed` (this process is rank 0); --distributed takes this rank's
  // place from torchrun's environment (dist::spec_from_env). master_port 0 = a free one.
  int nproc = 1;
  bool distributed = false;
  int master_port = 0;
  std::vector<std::string> worker_args;  // the recipe and the options every rank shares
};

// A worker rank (`--distributed` with RANK > 0): joins the group and trains the jobs rank 0
// sends until it is done; never opens the ledger. Returns the exit code.
int run_worker(const RunOptions& o);

// The audited run itself failed: a [launch] command that exited non-zero, was stopped by the
// budget guard or a timeout, or wrote no checkpoint. The run is in the ledger, failed, with its
// seconds (billed as a failed run of the claim); `audit run` exits with exit_code (1; 130 when
// it was interrupted with Ctrl-C) and this message.
struct RunFailed : std::runtime_error {
  RunFailed(int64_t run, const std::string& what, int code = 1)
      : std::runtime_error(what), run_id(run), exit_code(code) {}
  int64_t run_id;
  int exit_code;
};

// Runs the whole pipeline; returns the run id. Throws audit::InputError for bad input (before
// anything is written to the ledger) and std::exception for failures (the run is then marked
// failed, keeping what it metered).
int64_t run(const RunOptions& o);

}  // namespace audit::pipeline
