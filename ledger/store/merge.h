// Several nodes: the node rank an `audit run` records (from --node-rank or the launcher's
// environment), and `audit ledger merge`, which joins one run from each node's ledger into one
// run of a new ledger, each stage keeping its node, with the hash chain rebuilt.
// docs/launch.md, "Several nodes" describes the use, docs/ledger.md the rows; the rules are below.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ledger/store/ledger.h"

namespace audit::ledger {

// A run's node: rank (0-based), node count (0 = not known) and where they came from.
struct NodeRank {
  int rank = -1;      // -1 = not a multi-node run
  int nnodes = 1;
  std::string from;   // e.g. "--node-rank 1 --nnodes 2", "SLURM_NODEID=1 SLURM_NNODES=2"
};

// Looks up an environment variable (std::getenv in `audit run`; a map in tests).
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

// The node rank of `audit run`: --node-rank when given, else the first of GROUP_RANK (set by
// torchrun's agent, count GROUP_WORLD_SIZE), NODE_RANK (count unknown unless --nnodes) and
// SLURM_NODEID (count SLURM_NNODES) that is set; --nnodes overrides the count. Nothing given:
// {-1, 1, ""}, a single-node run. Throws audit::InputError (exit 2) naming the flag or variable
// for a value that is not a whole number, a negative rank, a count below 1, a rank not below
// the count, or --nnodes without any rank.
NodeRank resolve_node_rank(std::optional<int> flag_rank, std::optional<int> flag_nnodes,
                           const EnvLookup& env);

// One node ledger to merge and the run to take from it ("latest" or an id).
struct MergeInput {
  std::string path;
  std::string run = "latest";
};

struct MergeOptions {
  std::vector<MergeInput> inputs;  // two or more
  std::string out;                 // the new ledger
  bool force = false;              // replace an existing --out (never one of the inputs)
  // Called on the new ledger with the merged run before it is closed and moved into place
  // (the CLI stores the recomputed verdicts here; ledger/store cannot compute them).
  std::function<void(Ledger&, int64_t)> before_close;
};

struct MergedNode {
  int rank = -1;
  std::string path;
  int64_t run_id = 0;           // in its own ledger
  RunStatus status = RunStatus::succeeded;
  int64_t events = 0;           // its run's events
  int64_t stages = 0;
  std::string head_hash;        // the last event hash of its whole ledger (the chain's head)
};

struct MergeResult {
  int64_t run_id = 0;           // the merged run in the new ledger
  RunStatus status = RunStatus::succeeded;
  std::vector<MergedNode> nodes;  // by rank
  int64_t events_in = 0, events_out = 0;
  int64_t stages = 0;
  int64_t cost_items = 0;             // written
  int64_t shared_costs_dropped = 0;   // declared/estimated lines a lower rank already holds
  int64_t evals = 0;                  // written (from evals_from)
  int64_t evals_dropped = 0;          // other nodes' eval rows (kept as artifacts if they differ)
  int evals_from = -1;                // the rank whose eval rows the merged run holds
  int64_t artifacts = 0, artifacts_deduplicated = 0;
  int64_t verdicts_dropped = 0;       // the nodes' verdicts (the merged run's are recomputed)
  std::vector<std::string> warnings;  // also stored as warning events
};

// Joins one run of each input ledger into ONE run of a new ledger at o.out:
// - refuses (audit::InputError, exit 2, naming the file) fewer than two inputs, an --out that
//   exists (unless force) or is an input, an input that is missing, not a ledger, fails
//   verify(), or whose run is still running or has no node rank, runs of different recipe
//   SHA-256, two runs with the same node rank, and a run whose declared node count differs
//   from the number of inputs;
// - the merged run: the nodes' recipe, started_at = the earliest start, ended_at = the latest
//   end, status = the worst (aborted > failed > succeeded), host/git_commit/device the nodes'
//   distinct values joined by ",", node_rank -1, nnodes = the inputs, node_from "merge";
// - events are re-appended in time order (each node's own order kept) with new ids and hashes;
//   each keeps its time and value and gets source "node<K>/<its source>"; structured rows are
//   rewritten with the new run and stage ids and carry their node: stages (node), meter
//   samples (through their stage), artifacts, cost items, evals;
// - cost items: lines a node metered (provenance measured, or derived from a stage: inputs has
//   "stage") are kept per node, tagged inputs.node and "node K: " in the description, so the
//   totals sum the nodes; declared and estimated lines (claim, base model, teacher, ...) are
//   taken once, from the lowest rank that has any; another node's identical line is dropped,
//   a differing one is dropped with a warning and kept as artifact "cost_items@node<K>";
// - evals come from the lowest rank that has any; the others' rows are dropped (identical
//   ones silently; differing ones with a warning, kept as artifact "evals@node<K>");
// - artifacts: the lowest rank's keep their names; another node's is dropped when the lowest
//   rank holds the same name with the same content, else stored as "<name>@node<K>";
// - verdicts are not copied (o.before_close recomputes them on the merged run);
// - a "merge" event names every input (path, run, rank, status, event count, head hash) and
//   what was dropped. The file is written beside o.out and renamed into place when complete.
MergeResult merge_ledgers(const MergeOptions& o);

}  // namespace audit::ledger
