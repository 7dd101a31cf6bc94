// Exports of one ledger run to the files other tools read: an MLflow tracking folder (the file
// store layout `mlflow`'s client reads), CodeCarbon's emissions.csv, and lm-eval's results
// JSON. Each figure comes from a ledger row; what is not metered is left empty, never made up.
// docs/ledger.md describes each format, what it was checked against, and the exact commands.
// The plain formats (json, csv, mllog) are in ledger/store (export_json and friends).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "ledger/store/ledger.h"

namespace audit::exports {

// ---- MLflow --------------------------------------------------------------------------------

// The resolved recipe (TOML text) flattened to MLflow params: dotted keys ("train.lr"), arrays of
// tables indexed ("claim.results.0.benchmark"), other arrays as JSON text, strings verbatim,
// numbers as TOML writes them. Keys are made MLflow-safe (characters outside [A-Za-z0-9_.- :/]
// become '_'). Values longer than MLflow's limit (6000 characters, mlflow/utils/validation.py
// MAX_PARAM_VAL_LENGTH) are cut there; their keys are returned in `truncated`. Throws
// audit::InputError when the text is not TOML.
struct FlatParams {
  std::vector<std::pair<std::string, std::string>> params;  // in the recipe's order
  std::vector<std::string> truncated;
};
FlatParams flatten_recipe(const std::string& toml_text);

struct MlflowOptions {
  std::string report_html;                  // the HTML report's bytes; "" = no report artifact
  std::string report_name = "report.html";  // its artifact name
};

struct MlflowWritten {
  std::string experiment_id;  // the claim's experiment (found by its audit.claim tag, or new)
  std::string run_id;         // 32 hex: SHA-256 of the ledger's absolute path, run id, start time
  std::string run_dir;        // <root>/<experiment_id>/<run_id>
  size_t params = 0, metrics = 0, metric_points = 0, tags = 0;
  std::vector<std::string> artifacts;  // artifact names written under run_dir/artifacts
};

// Writes run `run_id` as one MLflow run in the tracking folder `root` (created if needed; other
// experiments and runs in it are kept) in MLflow's file store layout: <root>/0/meta.yaml (the
// Default experiment, when missing), <root>/<experiment_id>/meta.yaml with tags/audit.claim,
// and <root>/<experiment_id>/<run_id>/{meta.yaml, params/, metrics/, tags/, artifacts/}.
// Experiment = the claim name; params = flatten_recipe of the stored recipe; metrics = loss
// curves per step, stage meters, eval accuracies with their intervals (step = seed), cost
// totals; tags = recipe SHA-256, git commit, host, status, device, audit version, verdicts;
// artifacts = recipe.toml, audit_run.json (export_json) and the report when given. Exporting
// the same run again replaces its folder. Throws std::runtime_error naming a path it cannot
// write, ledger::LedgerError for an unknown run.
MlflowWritten write_mlflow(const ledger::Ledger& l, int64_t run_id, const std::string& root,
                           const MlflowOptions& opt = {});

// ---- CodeCarbon ----------------------------------------------------------------------------

// CodeCarbon's emissions.csv header, in its order: the fields of EmissionsData
// (codecarbon/output_methods/emissions_data.py, codecarbon 3.3.0, commit 4dde6e30f061).
extern const std::vector<std::string> kCodecarbonColumns;

struct CodecarbonOptions {
  // Grid carbon intensity in g CO2eq per kWh; < 0 = not given: emissions and emissions_rate
  // are left empty (the ledger has no location or grid data to take one from).
  double carbon_intensity_g_per_kwh = -1;
};

// One row per stage of the run (in stage order). Filled from the stage's meters: duration =
// wall_s; gpu_energy = energy_j / 3.6e6 kWh and gpu_power = energy_j / wall_s W when the stage's
// power was metered (NVML), else empty; cpu and RAM power and energy are empty (not metered
// here); energy_consumed = the metered energy (GPU only); emissions = energy_consumed x
// intensity / 1000 kg when an intensity is given; gpu_utilization_percent = gpu_busy_s / gpu_s
// x 100; gpu_count from the stage; project_name = claim, experiment_id = "run<id>", run_id =
// "run<id>-<stage>"; tracking_mode "machine" (NVML reads whole devices); pue 1, wue 0 (none
// applied). Every column the ledger does not hold is empty. Throws ledger::LedgerError for an
// unknown run.
std::string export_codecarbon(const ledger::Ledger& l, int64_t run_id,
                              const CodecarbonOptions& opt = {});

// ---- lm-eval -------------------------------------------------------------------------------

// The run's eval rows of one model as an lm-eval results JSON (suites/lm_eval
// write_lm_eval_results): model "" = "tuned" when the run has it, else the first model. The
// model is named "audit:<claim>/<model>". Throws audit::InputError when the run has no eval
// rows or none of that model (naming the models it has).
std::string export_lm_eval(const ledger::Ledger& l, int64_t run_id, const std::string& model = "");

// The audit version a run was made with: the "version" of its "environment" event; "" when the
// run wrote none (runs not made by `audit run`).
std::string run_audit_version(const ledger::Ledger& l, int64_t run_id);

}  // namespace audit::exports
