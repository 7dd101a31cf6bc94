// The SQLite ledger: one file holding every run, stage, event, meter sample, cost item,
// evaluation and verdict. WAL, foreign keys, a busy timeout so processes can share it, every
// write in one transaction, schema version stamped and migrated.
//
// Events are append-only and hash-chained: each row stores the previous event's hash and its
// own, SHA-256 over a canonical encoding of its fields (see canonical_event()). Structured rows
// (stage ends, meter samples, cost items, evals, verdicts, artifacts) are written together with
// an event whose value is the row's canonical JSON, so verify() covers them too.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/sha256.h"  // sha256_hex: the one SHA-256 of the project

struct sqlite3;

namespace audit::ledger {

inline constexpr int kSchemaVersion = 2;  // 2: runs.node_rank/nnodes/node_from, stages.node

// Raised for a ledger that cannot be opened or read as ours (bad file, newer schema): exit 2.
struct LedgerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class RunStatus { running, succeeded, failed, aborted };
const char* to_string(RunStatus s);
RunStatus parse_run_status(const std::string& s);  // throws LedgerError on an unknown name

// This machine's host name (gethostname), recorded with every run.
std::string this_host();
// Whether process pid exists on this host and is not a zombie.
bool pid_alive(int64_t pid);
// Unix time in seconds (system clock, microsecond resolution).
double now_s();

struct RunInfo {
  int64_t id = 0;
  std::string name;           // recipe claim name, e.g. "s1-mini"
  std::string recipe_path;    // as given on the command line
  std::string recipe_text;    // the resolved recipe, verbatim (TOML)
  std::string recipe_sha256;  // hex SHA-256 of recipe_text
  std::string host;
  std::string git_commit;
  std::string device;         // "cpu" or "cuda"
  double started_at = 0;      // unix seconds
  double ended_at = 0;        // 0 while running
  double heartbeat_at = 0;
  int64_t pid = 0;
  RunStatus status = RunStatus::running;
  // Several nodes (docs/launch.md, "Several nodes"). A run of one node of a multi-node job records its
  // node rank (0-based) and the job's node count; a run of `audit ledger merge` records
  // node_rank -1, nnodes = the nodes it joined and node_from "merge" (its stages keep their
  // nodes). A plain single-node run keeps the defaults (-1, 1, ""), and then the node fields
  // are left out of its canonical JSON, so ledgers written before schema 2 still verify.
  int node_rank = -1;         // -1 = not given
  int nnodes = 1;             // node count; 0 = a node rank was given without the count
  std::string node_from;      // where node_rank came from: "--node-rank", "NODE_RANK",
                              // "GROUP_RANK", "SLURM_NODEID", "merge" ("" = not given)
  bool multi_node() const { return node_rank >= 0 || nnodes != 1 || !node_from.empty(); }
};

// Per-stage metering, written when a stage ends (or when an aborted run is recovered).
struct StageInfo {
  int64_t id = 0;
  int64_t run_id = 0;
  std::string name;           // pretrain, distill, select, sft, eval, ...
  double started_at = 0, ended_at = 0;
  double wall_s = 0;          // wall-clock seconds
  double cpu_s = 0;           // process CPU seconds (user + system)
  int gpu_count = 0;          // devices allocated to the stage
  double gpu_s = 0;           // what a cloud bills: gpu_count * wall_s
  double gpu_busy_s = 0;      // NVML utilization integral; reported beside gpu_s, never instead
  double gpu_peak_mem_bytes = 0;
  double energy_j = 0;        // from NVML power samples; 0 when not metered
  bool power_metered = false; // false on machines without NVML (recorded, not faked)
  std::string status = "running";  // running | succeeded | failed | aborted
  int node = -1;              // the node rank it ran on (its run's node_rank; kept by a merge);
                              // -1 = a single-node run (left out of the canonical JSON then)
};

struct MeterSample {
  int64_t run_id = 0, stage_id = 0;
  double t = 0;               // unix seconds
  std::string device;         // "cpu", "cuda:0", ...
  double wall_s = 0;          // since stage start
  double cpu_s = 0;           // process CPU seconds since stage start (cpu device only)
  double busy_s = 0;          // GPU busy seconds since stage start
  double mem_bytes = 0;       // RSS for cpu, used memory for a GPU
  double power_w = -1;        // -1 when not metered
};

enum class Provenance { measured, declared, estimated };
const char* to_string(Provenance p);
Provenance parse_provenance(const std::string& s);  // throws LedgerError on an unknown name

struct CostItem {
  int64_t id = 0, run_id = 0;
  std::string category;       // final_run, data_generation, filtering, curation, base_model,
                              // failed_runs, search, evaluation, energy, claimed, ...
  std::string description;
  double quantity = 0;
  std::string unit;           // "GPU-hour", "CPU-hour", "1M tokens", "kWh", "hour", "USD"
  double price_low = 0, price_mid = 0, price_high = 0;  // USD per unit
  Provenance provenance = Provenance::estimated;
  std::string formula;        // how quantity was obtained, e.g. "6*N*D / (peak*MFU)"
  nlohmann::json inputs = nlohmann::json::object();  // the formula's inputs
  std::string source;         // price band source and date, or the claim's citation
};

struct EvalResult {
  int64_t id = 0, run_id = 0;
  std::string model;          // "base" | "tuned"
  std::string suite;          // e.g. "arith"
  std::string split;          // "id", "ood_long", "ood_heldout_op", "ood_format"
  bool ood = false;
  int64_t seed = 0;
  int64_t budget = -1;        // thinking-token budget; -1 = unlimited
  int64_t n = 0, correct = 0;
  double score = 0, ci_low = 0, ci_high = 0;  // accuracy with Wilson 95% interval
};

struct Verdict {
  int64_t id = 0, run_id = 0;
  std::string claim;          // the claim line, e.g. "cost: under $50"
  std::string kind;           // cost | result | generalization | replay
  std::string claimed, measured;
  std::string verdict;        // supported | not supported | not reproducible here
  std::string reason;
};

struct Event {
  int64_t id = 0, run_id = 0, stage_id = 0;  // stage_id 0 = none
  int64_t t_us = 0;           // unix microseconds
  std::string type;           // START | END | POINT
  std::string key;            // from ledger/store/event_keys.h
  std::string value;          // JSON text
  std::string source;         // file:line of the writer
  std::string prev_hash, hash;
};

// The exact bytes that are hashed for an event (stable across versions; documented in docs/).
std::string canonical_event(const Event& e);
using audit::sha256_hex;
inline const std::string kGenesisHash(64, '0');  // prev_hash of the first event

// Canonical JSON of each row kind: what its chained event carries as value, and what exports
// write (docs/ledger.md lists the fields). Row ids are not included; the row stores event_id.
// The node fields (RunInfo node_rank, nnodes, node_from; StageInfo node) appear only when set
// (RunInfo::multi_node(), StageInfo::node >= 0).
nlohmann::json to_json(const RunInfo& r);      // without recipe_text (its SHA-256 stands for it)
nlohmann::json to_json(const StageInfo& s);
nlohmann::json to_json(const MeterSample& m);
nlohmann::json to_json(const CostItem& c);
nlohmann::json to_json(const EvalResult& e);
nlohmann::json to_json(const Verdict& v);

struct VerifyReport {
  bool ok = true;
  int64_t events_checked = 0;
  int64_t rows_checked = 0;
  int64_t first_bad_event = 0;  // the event involved in the first problem; 0 when ok or when
                                // the problem involves no event (e.g. a stage whose run is gone)
  std::string message;          // names the first bad row and what is wrong with it
};

// How a ledger is opened: read_write (the default) or read_only (readers such as the report).
enum class OpenMode { read_write, read_only };

class Ledger {
 public:
  // Opens (creating if needed) the ledger file, migrates the schema, and marks runs whose
  // process is gone (same host, pid not alive) or whose heartbeat is older than
  // stale_after_s as aborted, keeping what they metered. Throws LedgerError.
  explicit Ledger(const std::string& path, double stale_after_s = 120.0);
  // OpenMode::read_write is the constructor above. OpenMode::read_only opens an existing ledger
  // with SQLITE_OPEN_READONLY: it creates no file, migrates nothing, marks no run aborted (a
  // dead run still reads "running") and does not checkpoint the WAL on close, so the .db file's
  // bytes and the -wal file's content do not change. Reading a WAL database needs its -shm
  // index: SQLite creates PATH-shm (and an empty PATH-wal) beside it when they are missing, so
  // the folder must be writable then. Every writing method throws LedgerError. Throws
  // LedgerError for a missing file, a file that is not a ledger, or one that needs a migration.
  Ledger(const std::string& path, OpenMode mode);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  int schema_version() const;

  // Runs.
  int64_t begin_run(const RunInfo& info);  // id and status are assigned
  void heartbeat(int64_t run_id);
  void end_run(int64_t run_id, RunStatus status);
  std::optional<RunInfo> run(int64_t run_id) const;
  std::vector<RunInfo> runs() const;  // newest first
  int64_t latest_run() const;         // 0 when empty
  std::vector<int64_t> recover_aborted(double stale_after_s);  // ids marked aborted now

  // Stages. A stage takes its run's node_rank as its node.
  int64_t begin_stage(int64_t run_id, const std::string& name);
  void end_stage(const StageInfo& s);  // s.id from begin_stage; status succeeded/failed
  std::vector<StageInfo> stages(int64_t run_id) const;

  // Events: append one to the chain; returns its id. value must be JSON text.
  int64_t append_event(int64_t run_id, int64_t stage_id, const std::string& type,
                       const std::string& key, const nlohmann::json& value,
                       const std::string& source = "");
  std::vector<Event> events(int64_t run_id) const;  // 0 = all runs

  // Structured rows (each also chained through an event).
  void add_meter_samples(const std::vector<MeterSample>& samples);
  std::vector<MeterSample> meter_samples(int64_t run_id, int64_t stage_id = 0) const;
  int64_t add_cost_item(const CostItem& c);
  std::vector<CostItem> cost_items(int64_t run_id) const;
  int64_t add_eval(const EvalResult& e);
  std::vector<EvalResult> evals(int64_t run_id) const;
  int64_t add_verdict(const Verdict& v);
  std::vector<Verdict> verdicts(int64_t run_id) const;
  // Named artifacts stored with the run: decontamination report, selection counts, loss
  // curves, checkpoint manifests... (JSON).
  int64_t put_artifact(int64_t run_id, int64_t stage_id, const std::string& name,
                       const nlohmann::json& content);
  std::optional<nlohmann::json> artifact(int64_t run_id, const std::string& name) const;
  std::vector<std::string> artifact_names(int64_t run_id) const;

  // Walks the chain and the invariants; the first bad row is named in the message
  // (ledger/store/verify.cpp; semantics in docs/ledger.md). Read-only.
  VerifyReport verify() const;

  // Runs fn inside one IMMEDIATE transaction (nested calls join the outer one). Every write
  // goes through here; on a read-only ledger it throws LedgerError before touching the file.
  void transaction(const std::function<void()>& fn);

  sqlite3* handle() const { return db_; }

 private:
  void open(double stale_after_s);
  void check_is_ledger();
  void migrate();
  int64_t append_event_locked(int64_t run_id, int64_t stage_id, const std::string& type,
                              const std::string& key, const std::string& value,
                              const std::string& source);
  void touch_run(int64_t run_id);
  void abort_run_locked(const RunInfo& r, const std::string& reason);

  std::string path_;
  sqlite3* db_ = nullptr;
  bool read_only_ = false;
  int tx_depth_ = 0;
  mutable std::recursive_mutex mu_;  // one connection, usable from several threads
};

// Resolves a RUN argument: "latest" or a run id. Throws audit::InputError naming the ledger
// when there is no such run.
int64_t resolve_run(const Ledger& l, const std::string& spec);

// Exports of one run (ledger/store/export.cpp); formats in docs/ledger.md. Throw LedgerError for an
// unknown run.
std::string export_json(const Ledger& l, int64_t run_id);
std::string export_csv(const Ledger& l, int64_t run_id);
// ":::MLLOG {...}" lines, one per event: MLPerf's line syntax (mlperf_logging's parser reads
// them), audit's keys; run_stop / run_aborted carry metadata.status "success" | "aborted".
std::string export_mllog(const Ledger& l, int64_t run_id);

}  // namespace audit::ledger
