// Event keys and types for the ledger's events table, in the manner of MLPerf's mllog
// constants: every writer uses these names, and the verifier and exports know them.
#pragma once

namespace audit::ledger::keys {

// Event types (events.type). Exported to mllog as INTERVAL_START / INTERVAL_END / POINT_IN_TIME.
inline constexpr const char* kStart = "START";
inline constexpr const char* kEnd = "END";
inline constexpr const char* kPoint = "POINT";

// Written by the ledger itself; each carries the canonical JSON of its structured row.
inline constexpr const char* kRunStart = "run_start";          // START, value: run (no recipe text)
inline constexpr const char* kRunStop = "run_stop";            // END, value: {status, ended_at}
inline constexpr const char* kRunAborted = "run_aborted";      // END, recovery of a dead run
inline constexpr const char* kStageStart = "stage_start";      // START, value: {run_id, name, started_at}
inline constexpr const char* kStageStop = "stage_stop";        // END, value: the stage's metering
inline constexpr const char* kMeterSamples = "meter_samples";  // POINT, value: array of samples
inline constexpr const char* kCostItem = "cost_item";          // POINT, value: the cost item
inline constexpr const char* kEvalResult = "eval_result";      // POINT, value: the eval row
inline constexpr const char* kVerdict = "verdict";             // POINT, value: the verdict row
inline constexpr const char* kArtifact = "artifact";           // POINT, value: name + content hash
// Written by ledger/meter at the end of a stage with GPUs: per GPU its NVML name and UUID, the
// energy and where it came from (energy_source), and the stage's PIDs NVML saw on it.
inline constexpr const char* kGpuMetering = "gpu_metering";    // POINT, see docs/ledger.md
inline constexpr const char* kMerge = "merge";                 // POINT, `audit ledger merge`: the inputs

// Free events written by stage runners (value: JSON).
inline constexpr const char* kRecipe = "recipe";               // POINT, resolved recipe summary
inline constexpr const char* kSeed = "seed";                   // POINT
inline constexpr const char* kDevice = "device";               // POINT, device description
inline constexpr const char* kGitBranch = "git_branch";        // POINT, {branch, from, commit?,
                                                               // commit_from?} (branch.h)
inline constexpr const char* kEpochStart = "epoch_start";      // START, {epoch}
inline constexpr const char* kEpochStop = "epoch_stop";        // END, {epoch}
inline constexpr const char* kTrainLoss = "train_loss";        // POINT, {step, loss, lr, tokens}
inline constexpr const char* kEvalLoss = "eval_loss";          // POINT, {step, loss}
inline constexpr const char* kEvalAccuracy = "eval_accuracy";  // POINT, {suite, split, score}
inline constexpr const char* kCheckpoint = "checkpoint";       // POINT, {path, sha256, step}
inline constexpr const char* kDataset = "dataset";             // POINT, {name, rows, sha256}
inline constexpr const char* kDecontamination = "decontamination";  // POINT, overlap summary
inline constexpr const char* kSelection = "selection";         // POINT, filter counts
inline constexpr const char* kLaunchStart = "launch_start";   // POINT, {argv, workdir, env_keys, ...}
inline constexpr const char* kLaunchStop = "launch_stop";     // POINT, {pid, exit_code, status, ...}
inline constexpr const char* kWarning = "warning";             // POINT, {message}
inline constexpr const char* kError = "error";                 // POINT, {message}

}  // namespace audit::ledger::keys
