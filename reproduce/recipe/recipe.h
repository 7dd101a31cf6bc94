// Recipes: a training claim written down as TOML. Every default lives once, in the section
// structs below (one comment per field; the model and training ones in the settings structs they
// extend, reproduce/settings/settings.h); a recipe file only overrides what differs, and
// `--set section.key=value` overrides last. Loading is strict: unknown sections or keys, wrong
// types, out-of-range values and missing required keys throw audit::InputError naming
// file:line:column and the dotted key. The resolved recipe (every field, stable order, see
// to_toml) and its SHA-256 are what the ledger stores with a run and with every checkpoint.
//
// Conventions: sizes and counts are int64_t; token counts, hours and money are double (TOML
// writes 18e12 as a float). Price and length "bands" are [low, mid, high] arrays; an empty array
// means "not set here": the shipped table (ledger cost model) applies.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/errors.h"      // audit::InputError (exit 2)
#include "reproduce/settings/settings.h"  // ModelSettings, TrainSettings: [base] and [train] defaults

namespace audit::recipe {

// The evaluation splits the datasets module produces; claim.results[].split names one of them
// (or "" when the claimed benchmark cannot be stood in for here).
inline constexpr const char* kSplitId = "id";                  // same distribution as the pool
inline constexpr const char* kSplitOodLong = "ood_long";       // longer operands than trained on
inline constexpr const char* kSplitOodHeldout = "ood_heldout"; // held-out operation/composition
inline constexpr const char* kSplitOodFormat = "ood_format";   // changed surface format
inline const std::vector<std::string> kSplitNames = {kSplitId, kSplitOodLong, kSplitOodHeldout,
                                                     kSplitOodFormat};

// Units an [[extras]] line may use; the cost model prices each one from [prices].
inline const std::vector<std::string> kExtraUnits = {"GPU-hour", "CPU-hour", "1M tokens",
                                                     "kWh", "hour", "USD"};

// [low, mid, high] with where it came from. In TOML: `key = [low, mid, high]` and, for prices,
// `key_source = "..."`. `set == false` (empty array in TOML) means "use the shipped table".
struct Band {
  bool set = false;
  double low = 0, mid = 0, high = 0;
  std::string source;  // citation for the numbers (prices); "" for bands without their own source
};

// One published benchmark result of the claim.
struct ClaimResult {
  std::string benchmark;  // e.g. "AIME24"
  double score = 0;       // claimed score in percent (0..100)
  int64_t n = 0;          // number of questions of the benchmark (30 for AIME24); 0 = unknown
  std::string split;      // a synthetic eval split standing in for it (kSplit*); a stand-in never
                          // confirms or refutes the claim (its verdict says "not reproducible here")
                          // unless the benchmark is the split itself ("arith-<split>")
  std::string suite;      // the [[eval.suites]] entry that IS this benchmark: judged only when the
                          // suite's name equals `benchmark` and its size equals `n`
};

// Compute the claimant spent on one phase, as they state it (e.g. DeepSeek-V3's pretraining).
struct ClaimPhase {
  std::string phase;      // e.g. "pretraining", "context_extension", "post_training"
  double gpu_hours = 0;   // declared GPU-hours of that phase
  std::string source;     // where it is stated
};

// A run of the same recipe someone published besides the headline (e.g. s1's repository log).
struct ReferenceRun {
  std::string description;  // what the run was
  std::string gpu_type;     // e.g. "H100-SXM"
  int64_t gpu_count = 0;    // GPUs used
  double wall_seconds = 0;  // wall time of the run
  std::string source;       // where it is stated
};

// [claim] — what was claimed, by whom, with which sources. Required: name.
struct ClaimSection {
  std::string name;                 // REQUIRED. short id, [A-Za-z0-9._-]+, e.g. "s1"; names the run
  std::string title;                // human title, e.g. "s1: Simple test-time scaling"
  std::string headline;             // the media line, e.g. "under $50"
  std::vector<std::string> sources; // citations (paper, repo, blog, with dates)
  double claimed_cost_usd = 0;      // the dollar figure claimed; 0 = none stated
  double claimed_gpu_hour_usd = 0;  // the GPU-hour price the claim assumed; 0 = not stated
  std::string gpu_type;             // GPU of the claimed run, e.g. "H100-SXM", "H800"
  int64_t gpu_count = 0;            // GPUs of the claimed run; 0 = not stated
  int64_t nodes = 0;                // nodes of the claimed run; 0 = not stated
  double wall_hours = 0;            // wall-clock hours claimed; 0 = not stated
  double gpu_hours = 0;             // GPU-hours claimed; 0 = derive as gpu_count*wall_hours
  std::string stage = "sft";        // what the claimed run did: "sft" | "pretrain" | "rl"
  std::vector<ClaimResult> results; // claimed benchmark scores ([[claim.results]] or inline)
  // An lm-eval results file (or an lm-eval --output_path folder: its newest results_*.json),
  // relative to the recipe file, whose tasks are added to `results` at load: benchmark = task,
  // score = the metric x 100, n = "n-samples" effective (suites/lm_eval). A result already
  // listed must agree with the file. The resolved recipe holds the filled `results`, this key
  // emptied, and `results_read_from` saying what was read, so it reloads without the file.
  std::string results_from;
  // The metric read per task from results_from, e.g. "acc,none" or "exact_match,strict-match";
  // "" = the task's only metric (a task with several then needs this key).
  std::string results_metric;
  std::string results_read_from;    // set at load: "<path> sha256:<hex>"; informational
  std::vector<ClaimPhase> phases;   // declared per-phase GPU-hours, if the claim breaks them down
  std::vector<ReferenceRun> reference_runs;  // other published runs of the same recipe
};

// [base] — the base model: architecture (parameter counts are computed from it, never typed
// in), how it was pretrained (declared), and, for a miniature, how it is pretrained here. The
// architecture fields and their defaults are settings::ModelSettings (reproduce/settings/
// settings.h), under the same keys (vocabulary: `vocab_size`), so the model built from a recipe
// is its [base] as it stands; the rest are the claim's.
struct BaseSection : settings::ModelSettings {
  std::string name;              // e.g. "Qwen2.5-32B-Instruct"
  // A Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json), relative
  // to the recipe file: the architecture comes from its config.json and the weights are loaded
  // instead of initialised. "" = none (the shapes above, random init or pretraining here).
  std::string checkpoint;
  // A Hugging Face config.json (relative to the recipe) to read the architecture from instead of
  // typing the shapes; with checkpoint set, defaults to checkpoint/config.json. Shapes typed in
  // the recipe must agree with it.
  std::string config;
  // The claim's model when this run uses another one: set by audit when a checkpoint given with
  // --set replaces the architecture the recipe file types (its name and the shapes that
  // differ); result verdicts then cannot judge the claim. "" = the run's model is the claim's.
  std::string claimed_model;
  // Declared pretraining (for the base-model cost when it was not trained here)
  double pretrain_tokens = 0;        // tokens the base was pretrained on, as declared; 0 = unknown
  std::string pretrain_source;       // citation for pretrain_tokens
  double declared_params = 0;        // total parameters as published (cross-check only); 0 = none
  double declared_active_params = 0; // active parameters per token as published (MoE); 0 = none
  // The share of the base model's pretraining this claim carries in its full cost, in [0, 1]
  // (the report's "full cost, with the base's share as declared"; the marginal cost leaves the
  // base out, share 0). 1 = all of it (the default). A share other than 1 needs
  // amortize_source: where the share comes from (e.g. "one of N fine-tunes of this base").
  double amortize_share = 1.0;
  std::string amortize_source;
  // Pretraining here (miniatures): train_here = true runs the pretrain stage and meters it
  bool train_here = false;       // pretrain this base in the run (its cost is then measured)
  int64_t pretrain_steps = 0;    // optimizer steps of the pretrain stage
  int64_t pretrain_batch = 32;   // sequences per pretrain step
  double pretrain_lr = 1e-3;     // peak pretrain learning rate (same warmup/cosine shape as train)
  int64_t pretrain_examples = 0; // distinct pretraining examples generated (direct answers)
  int64_t pretrain_seq_len = 128;// tokens per pretraining sequence (packed)
  double pretrain_skills_fraction = 0;  // share of number-handling documents: copies, digit
                                        // reversals, one-digit tables (datasets/tasks/splits.h)
};

// [data] — the question pool, the teacher that writes traces, s1's selection filters, and the
// length profile replay needs.
struct DataSection {
  std::string source = "synthetic";    // "synthetic" (seeded task generator) | "jsonl"
  std::string jsonl_path;              // s1K-shaped JSONL (question, thinking, answer); relative
                                       // to the recipe file; required when source = "jsonl"
  std::string question_field = "question";  // JSONL key of the question
  std::string thinking_field = "thinking_trajectories";  // JSONL key of the thinking trace (a
                                       // string, or an array of strings joined with "\n"); with
                                       // the default, "thinking" and "trace" are accepted too
  std::string answer_field = "attempt";// JSONL key of the answer trained on (s1K: the teacher's
                                       // attempt); with the default, "answer" and "solution" too
  int64_t pool_size = 4000;            // questions in the pool we generate/load
  int64_t select_n = 1000;             // samples kept by the filters (s1K: 1,000)
  int64_t seed = 1234;                 // generator/selection seed
  std::vector<std::string> operations = {"add", "sub", "mul1"};  // task ops of the pool, ID
                                       // test and pretraining (datasets/tasks/tasks.h all_ops())
  int64_t min_digits = 1;              // operand digits, smallest (pool and ID test)
  int64_t max_digits = 4;              // operand digits, largest (pool and ID test)
  int64_t ood_long_digits = 5;         // smallest operand digits of the ood_long split
                                       // (> max_digits: longer than anything trained on)
  int64_t ood_long_max_digits = 0;     // largest of the ood_long split; 0 = ood_long_digits + 1
  std::string ood_heldout_op = "addsub";  // op/composition only in the ood_heldout split
                                       // (a + b - c); never in `operations`; "" = no such split
  std::string ood_format = "words";    // surface format of the ood_format split ("words" |
                                       // "equation"; training uses "standard"); "" = no split
  std::string teacher = "solver";      // who writes the traces here: "solver" (exact solver,
                                       // priced per token as the API bill) | "model" (a model
                                       // trained here, metered) | "api" (an external model the
                                       // claim paid per token; declared, not runnable here)
  std::string teacher_name;            // the claim's teacher, e.g. "Gemini 2.0 Flash Thinking"
  double teacher_tokens_per_sample = 0;// declared/estimated teacher output tokens per sample
  int64_t pool_size_declared = 0;      // the claim's pool (s1: 59,029); 0 = same as pool_size
  bool filter_quality = true;          // drop malformed traces
  bool filter_difficulty = true;       // drop questions the base model already answers
  bool filter_diversity = true;        // spread over operation and length, favour longer traces
  Band seq_len_mean;                   // tokens per training sample, mean, as a band (replay)
  Band seq_len_p90;                    // tokens per training sample, 90th percentile, band
  int64_t seq_len_max = 0;             // longest training sample in tokens; 0 = unknown
  std::string seq_len_source;          // where the length profile comes from
};

// [train] — the SFT (or RL) schedule of the claimed run. The optimizer, schedule, precision,
// recompute and checkpoint fields and their defaults are settings::TrainSettings
// (reproduce/settings/settings.h), under the same keys, which the trainer takes as they stand;
// the rest describe the claimed run.
struct TrainSection : settings::TrainSettings {
  int64_t steps = 0;                   // declared optimizer steps (s1: 315); 0 = derive
  std::string optimizer = "adamw";     // "adamw" (the only one so far)
  int64_t block_size = 32768;          // max tokens per sequence (s1: 32768)
  bool packing = true;                 // pack samples into block_size sequences
  std::string parallelism = "fsdp_full_shard";  // "none" | "ddp" | "fsdp_full_shard" |
                                       // "fsdp_shard_grad_op" | "zero1" | "zero3" | "ep_pp_dp"
  std::string loss_on = "answer";      // "answer" (trace + answer, question masked) | "all"
};

// [[eval.suites]] — a benchmark file to evaluate on (suites/benchmarks/benchmarks.h has the
// JSONL format of each kind).
struct EvalSuite {
  std::string name;                    // REQUIRED. names the eval rows, e.g. "MATH500"
  std::string path;                    // REQUIRED. JSONL, relative to eval.suites_dir (itself
                                       // relative to the recipe file)
  std::string kind = "math";           // "math" (\boxed{} or last number, normalised) |
                                       // "choice" (letter, choices shuffled) | "exact" (trimmed)
  bool ood = false;                    // out of the training distribution
  std::string question_field = "question";  // JSONL key of the question ("problem" also read)
  std::string answer_field = "answer"; // JSONL key of the reference answer
  std::string choices_field = "choices";  // JSONL key of the choices (kind = "choice")
  int64_t limit = 0;                   // > 0: the first `limit` items only
};

// [eval] — how base and tuned models are evaluated (ID and every OOD split).
struct EvalSection {
  int64_t seeds = 3;                   // repetitions (different eval seeds); mean and spread
  int64_t n_id = 200;                  // questions of the ID split
  int64_t n_ood = 200;                 // questions of each OOD split
  int64_t max_new_tokens = 512;        // generation cap (thinking + answer)
  std::vector<int64_t> think_budgets = {32, 64, 128, 256};  // thinking-token caps to sweep
  int64_t wait_extensions = 2;         // budget forcing: "Wait" appends (suppress end-of-think)
  bool greedy = true;                  // greedy decoding; false = sample at temperature
  double temperature = 0.0;            // sampling temperature when greedy = false (> 0 then)
  double top_p = 1.0;                  // nucleus sampling when greedy = false (0 < top_p <= 1)
  int64_t samples = 1;                 // completions per question; the score is their mean
                                       // correctness (pass@1 over `samples`); > 1 needs sampling
  int64_t batch_size = 16;             // prompts decoded together (KV cache)
  std::string suites_dir;              // base folder of the suite paths; relative to the recipe
  std::vector<EvalSuite> suites;       // benchmark files; with data.source = "jsonl" at least one
};

// [prices] — overrides of the shipped price table. Each band is [low, mid, high] with a
// `<key>_source`; unset (empty array) = the shipped table in ledger/ applies.
struct PricesSection {
  Band gpu_hour_usd;      // USD per GPU-hour of the claimed GPU type
  Band cpu_hour_usd;      // USD per CPU-core-hour (runs here)
  Band api_usd_per_mtok;  // USD per 1M teacher output tokens (the API bill)
  Band kwh_usd;           // USD per kWh
  Band pue;               // data-centre power usage effectiveness (>= 1)
  Band co2_kg_per_kwh;    // grid carbon intensity
  Band expert_hour_usd;   // USD per hour of human curation/review
  Band base_mfu;          // model FLOP utilization band to estimate the base model (0..1]
};

// [hardware] — the claimed cluster (for estimate and replay).
struct HardwareSection {
  std::string gpu_type;          // e.g. "H100-SXM"; "" = claim.gpu_type
  int64_t gpu_count = 0;         // GPUs in total; 0 = claim.gpu_count
  int64_t nodes = 0;             // nodes; 0 = claim.nodes (or 1)
  int64_t gpus_per_node = 8;     // GPUs per node
  std::string interconnect;      // e.g. "nvlink4+ib400" (intra+inter node); "" = table default
};

// [replay] — timing the claimed shapes here (audit replay).
struct ReplaySection {
  int64_t layers = 0;                  // layers to build and time; 0 = as many as fit in memory
  int64_t steps = 5;                   // timed steps
  int64_t warmup_steps = 2;            // untimed steps first
  std::vector<int64_t> seq_lens;       // sequence lengths to time; empty = from [data] profile
  double overlap_low = 0.0;            // fraction of communication hidden behind compute, low
  double overlap_high = 0.8;           // ... high (overlap_low <= overlap_high, both 0..1)
};

// [regression] — when `audit dashboard` calls a new run of this claim a regression against its
// baseline run (docs/dashboard.md). The dashboard reads the section from the recipe stored with
// the newer run; a stored recipe without it (written before the section existed) gets these
// defaults. A threshold of 0 turns its rule off.
struct RegressionSection {
  double cost_growth_pct = 25;       // full cost (mid) may grow by at most this % over baseline
  double gpu_hours_growth_pct = 25;  // GPU-hours (all stages) may grow by at most this %
  double accuracy_drop_points = 2;   // a tuned headline accuracy (any split) may drop by at most
                                     // this many points; a drop counts only when significant
                                     // (two-proportion z-test at 95%)
  double throughput_ratio = 0.8;     // SFT training tokens/s may fall to this share of the
                                     // baseline's, no lower (0..1)
  bool verdict_changes = true;       // a verdict supported in the baseline and not now fails
};

// [[extras]] — a cost the headline left out, declared or estimated from the claim's sources.
struct ExtraCost {
  std::string category;     // cost category (ledger CostItem.category), e.g. "search"
  std::string description;  // what it was
  double quantity = 0;      // amount in `unit` (>= 0)
  std::string unit;         // one of kExtraUnits
  std::string gpu_type;     // for GPU-hours: which GPU; "" = claim.gpu_type
  std::string provenance = "declared";  // "declared" (stated by the claimant) | "estimated"
  std::string formula;      // for estimated: how quantity was obtained
  Band price_usd;           // per-unit price band; unset = priced from [prices] by unit
  std::string source;       // citation
};

// [launch.eval] — an external evaluator run on what the launched command produced (e.g.
// `lm_eval ... --output_path out`); its lm-eval results JSON is read into the ledger's evals.
struct LaunchEvalSection {
  bool set = false;                    // the recipe has a [launch.eval] table
  std::vector<std::string> command;    // REQUIRED. argv; a TOML string is run as {"sh", "-c", it}
  std::string workdir;                 // relative to the recipe file's folder; "" = launch.workdir
  std::map<std::string, std::string> env;  // set on top of audit's environment
  double timeout = 0;                  // seconds (or "90m", "2h", "30s" in TOML); 0 = none
  std::string results;                 // REQUIRED. lm-eval's results JSON, or the --output_path
                                       // folder it writes into; relative to the eval's workdir
};

// [launch] — the claimant's own command (torchrun, accelerate, a shell script), run as a
// metered stage (reproduce/launch; docs/launch.md). Absent = audit trains with its own trainer.
struct LaunchSection {
  bool set = false;                    // the recipe has a [launch] table
  std::vector<std::string> command;    // REQUIRED. argv; a TOML string is run as {"sh", "-c", it}
  std::string workdir;                 // relative to the recipe file's folder; "" = that folder;
                                       // must be an existing folder to run (check and estimate
                                       // read the recipe without it: see workdir_missing)
  // Set by load_recipe when workdir is not an existing folder: the complete message, with the
  // recipe's file:line:column and the key. `audit run` refuses the launch with it (exit 2,
  // before a run is opened); reading the recipe for check, estimate or a stored run does not.
  std::string workdir_missing;          // "" = the folder exists
  long workdir_line = 0, workdir_column = 0;  // where the key (or [launch]) is in the file
  std::map<std::string, std::string> env;  // set on top of audit's environment
  std::string output_dir;              // where the command writes its Hugging Face checkpoint,
                                       // relative to workdir; "" = none to evaluate
  std::string log_format = "hf-trainer";  // how its output is read into the loss curve:
                                       // "hf-trainer" | "regex" | "none"
  std::string log_regex;               // PCRE2 pattern with a named group `loss` (and optional
                                       // `step`, `lr`); required with log_format = "regex"
  double timeout = 0;                  // seconds (or "90m", "2h", "30s" in TOML); 0 = none
  double grace = 30;                   // seconds between SIGTERM and SIGKILL when stopping it
  double max_gpu_hours = 0;            // budget cap on metered GPU-hours; 0 = no cap
  double max_usd = 0;                  // budget cap on the metered cost in USD; 0 = no cap
  LaunchEvalSection eval;              // [launch.eval]
};

struct Recipe {
  ClaimSection claim;
  BaseSection base;
  DataSection data;
  TrainSection train;
  EvalSection eval;
  PricesSection prices;
  HardwareSection hardware;
  ReplaySection replay;
  LaunchSection launch;
  RegressionSection regression;
  std::vector<ExtraCost> extras;

  std::string path;                // the file it was loaded from ("" for text)
  std::vector<std::string> sets;   // the --set overrides applied, in order
  std::string resolved_toml;       // to_toml(*this): canonical, every field
  std::string sha256;              // hex SHA-256 of resolved_toml
};

// Loads, validates and resolves a recipe file; `sets` are "section.key=value" applied last, in
// order (later wins). Throws audit::InputError on any problem.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& sets = {});

// Same from text; `name_for_errors` is the file name used in messages and as Recipe::path.
Recipe parse_recipe_text(const std::string& text, const std::string& name_for_errors,
                         const std::vector<std::string>& sets = {});

// Reads only the [regression] section of a recipe's text (e.g. the resolved recipe a run stored),
// validated like load_recipe (exit 2 naming file:line:column and the key); the other sections are
// not read, so a recipe stored by an older version still gives its rules. The defaults when the
// text has no [regression]; *stated (when given) says whether it had one.
RegressionSection parse_regression_section(const std::string& text,
                                           const std::string& name_for_errors,
                                           bool* stated = nullptr);

// The canonical resolved form: every section and field, in declaration order, no comments.
// parse_recipe_text(to_toml(r)) yields the same sha256.
std::string to_toml(const Recipe& r);

// Appends the --seed override (train.seed and data.seed) when seed >= 0.
std::vector<std::string> with_seed(std::vector<std::string> sets, int64_t seed);

// Derived values (never written back into the recipe).
double claimed_gpu_hours(const ClaimSection& c);      // gpu_hours, else gpu_count*wall_hours
std::string resolve_path(const Recipe& r, const std::string& p);  // relative to recipe's folder
bool is_moe(const BaseSection& b);                    // routed_experts > 0
// The folders the launch and its evaluator run in: launch.workdir (or launch.eval.workdir, else
// the launch's) relative to the recipe file's folder, which is the default.
std::string launch_workdir(const Recipe& r);
std::string launch_eval_workdir(const Recipe& r);
// A duration as written in a recipe: seconds as a number, or "90m", "2h", "30s", "1h30m", "2d".
// Returns false (and leaves *seconds) for anything else.
bool parse_duration(const std::string& text, double* seconds);

}  // namespace audit::recipe
