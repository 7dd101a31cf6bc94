// The extrapolation math of `audit replay` (no LibTorch here; the timing lives in
// reproduce/replay_layers/replay_layers.h). From the measured time of a few layers' forward + backward
// (and of the embedding/output head and the optimizer step) on this device, at the timed shapes
// and sequence lengths, predict the wall time of the claimed run on the claimed cluster:
//
//   1. Roofline split: each measured time t of work W_t (FLOPs F_t, bytes B_t) on this device
//      (peak P_h FLOP/s, bandwidth M_h B/s) is split into a compute-bound part
//      t_c = t * (F_t/P_h) / R and a memory-bound part t_m = t * (B_t/M_h) / R, with
//      R = F_t/P_h + B_t/M_h (the roofline lower bound). The claimed work W_c (claimed shapes
//      and length, recompute included) on the claimed GPU (P_c, M_c) then takes
//      t' = t_c * (F_c/F_t) * (P_h/P_c) + t_m * (B_c/B_t) * (M_h/M_c)
//         = (F_c/P_c + B_c/M_c) / e,   e = R / t  (the roofline efficiency measured here).
//   2. Depth and data: per GPU, (sequences / GPUs / micro_batch) micro-batches, each through
//      every layer (dense, MoE, MTP) and the embedding/head, averaged over the claimed length
//      profile (a log-normal fitted to the mean and p90, truncated at the block size), plus one
//      optimizer step per optimizer step on the GPU's shard of the parameters.
//   3. Communication per GPU: FSDP all-gather (forward and backward) + reduce-scatter of the
//      parameters per step, DDP/ZeRO-1 all-reduce, expert-parallel all-to-all (dispatch and
//      combine, forward and backward) per MoE layer and token, over the slowest link the
//      collective crosses (InfiniBand per GPU when nodes > 1, else NVLink one direction).
//   4. Overlap band: wall = max(compute + (1 - overlap) * comm, compute, comm) for overlap in
//      [replay.overlap_low, replay.overlap_high].
// The band: low = shortest lengths (data.seq_len_* low), most overlap, fp8 peak for fp8 claims;
// mid = mid lengths, mean overlap; high = longest lengths, least overlap, bf16 peak.
// docs/replay.md has the formulas, the work model and what each figure means.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ledger/costs/cost_model.h"  // ArchSpec, Band, count_parameters
#include "reproduce/recipe/recipe.h"   // Recipe

namespace audit::replay {

// ---------------------------------------------------------------------------------------------
// Roofline

// One device at one precision.
struct Peak {
  std::string device;  // "H100-SXM", "cpu", ...
  double flops = 0;    // peak FLOP/s at the precision of the work
  double bytes_s = 0;  // memory bandwidth, bytes/s
  std::string source;  // where the two figures come from
};

// FLOPs and memory traffic of one unit of work.
struct Work {
  double flops = 0;
  double bytes = 0;
};

// The roofline lower bound F/P + B/M (sum, not max: the split needs both parts).
double roofline_seconds(const Work& w, const Peak& p);

struct Translation {
  double seconds = 0;     // predicted on the claimed device for the claimed work
  double compute_s = 0;   // its compute-bound part
  double memory_s = 0;    // its memory-bound part
  double efficiency = 0;  // e = roofline_seconds(timed, here) / measured
  double compute_fraction_here = 0;  // t_c / t of the measured time
};
// Throws std::invalid_argument when measured_s <= 0 or a peak is not positive.
Translation translate(double measured_s, const Work& timed, const Peak& here, const Work& claimed,
                      const Peak& there);

// ---------------------------------------------------------------------------------------------
// Work model (what one unit of each measured part costs, for the roofline split)

enum class Part { kDenseLayer, kMoeLayer, kEmbedHead, kOptimizer };
const char* part_name(Part p);  // "dense_layer", "moe_layer", "embed_head", "optimizer"
Part parse_part(const std::string& s);  // throws std::invalid_argument

// Parameters of one layer of the given kind (moe: routed experts at top_k for active).
struct LayerParams {
  int64_t total = 0;   // every weight of the layer
  int64_t active = 0;  // what one token passes through
};
LayerParams layer_params(const ledger::ArchSpec& a, bool moe_layer);

// Forward + backward of one layer over `batch` sequences of `seq_len` tokens:
//   FLOPs = 6 * active params * tokens + causal attention 6 * heads * d * L^2 * batch
//           (half of the cost model's non-causal 12 * heads * d * L per token), x 4/3 with
//           full recompute (one more forward);
//   bytes = bytes_per_value * (4 * touched params (weights read forward and twice backward,
//           gradient written; + 1 more read with recompute) + 34 * hidden * tokens
//           (activations written forward, read backward; Korthikanti et al. 2022, flash attn)).
//   Touched params of an MoE layer count min(routed_experts, tokens * top_k) experts.
Work layer_work(const ledger::ArchSpec& a, bool moe_layer, double seq_len, double batch,
                double bytes_per_value, bool recompute);
// Embedding lookup + final norm + output head + cross-entropy, forward + backward:
//   FLOPs = 6 * vocab * hidden * tokens; bytes = bytes_per_value * (4 * vocab * hidden +
//   2 * hidden * tokens) + 12 * vocab * tokens (fp32 logits written, read, gradient written).
Work embed_head_work(const ledger::ArchSpec& a, double seq_len, double batch,
                     double bytes_per_value);
// AdamW over `params` parameters: 28 bytes each (read param, grad, m, v; write param, m, v in
// fp32) and 12 FLOPs each; memory-bound everywhere.
Work optimizer_work(double params);

// ---------------------------------------------------------------------------------------------
// Length profile

// Sequence lengths standing for the claimed distribution: `n` equal-weight quantiles of a
// log-normal with the given mean and 90th percentile (sigma from ln(p90/mean) = 1.2816 s - s^2/2;
// p90 <= mean or unset (0) gives all sequences at the mean), clipped to [1, max_len] (the
// block size truncates). With p90/mean above e^0.8212 = 2.27 sigma is capped at 1.2816.
std::vector<double> length_quantiles(double mean, double p90, double max_len, int n = 32);
double lognormal_sigma(double mean, double p90);
double normal_quantile(double p);  // inverse standard normal CDF (bisection on erfc)

// ---------------------------------------------------------------------------------------------
// Communication

// Per-GPU bytes of one optimizer step's collectives for `params` parameters on `gpus` GPUs
// (ring algorithms, (G-1)/G of the data crosses each GPU's link):
//   fsdp_full_shard / zero3: 3 (all-gather fwd, all-gather bwd, reduce-scatter grads)
//   fsdp_shard_grad_op: 2 (one all-gather + reduce-scatter); ddp / zero1: 2 (all-reduce)
//   none: 0; ep_pp_dp: 0 here (its all-to-all is per token, see ep_bytes_per_token).
double collective_bytes_per_step(const std::string& parallelism, double params, double gpus,
                                 double bytes_per_value);
// Expert-parallel all-to-all bytes per token over the whole model: MoE layers (+ MTP blocks) x
// min(top_k, topk_groups) remote copies (node-limited routing sends one copy per node) x hidden
// x (dispatch + combine bytes) x 2 (forward and backward).
// topk_groups <= 0: no node limit (top_k copies).
double ep_bytes_per_token(const ledger::ArchSpec& a, int64_t topk_groups, double dispatch_bytes,
                          double combine_bytes);

// ---------------------------------------------------------------------------------------------
// The communication model's self-check (`audit bench comm`, docs/replay.md)
//
// Bytes crossing each rank's link for one collective of `bytes` of data (the CommLog's bytes:
// all-reduce and broadcast the tensor, all-gather the full output, reduce-scatter the full input)
// on `ranks` ranks, ring algorithms as collective_bytes_per_step assumes: all_reduce
// 2 (G-1)/G bytes; all_gather, reduce_scatter (G-1)/G bytes; broadcast (G-1)/G bytes (a
// pipelined ring: each rank but the root receives the tensor once). Unknown kind: throws
// std::invalid_argument.
double link_bytes_of(const std::string& kind, double bytes, double ranks);

// The link as all-reduce timings measure it, in Hockney's model of a collective,
// t = latency_s + link_bytes_of(kind, S, G) / bytes_s: bytes_s is what Cluster::link_bytes_s
// stands for (bytes crossing each rank's link per second), latency_s the fixed cost of one call.
// From the median all-reduce time of a small buffer and of a large one, both on `ranks` ranks:
//   bytes_s   = (x_large - x_small) / (t_large - t_small), x = link_bytes_of("all_reduce", S, G)
//   latency_s = max(0, t_small - x_small / bytes_s)
// plain_bytes_s = x_large / t_large is the same figure with no latency term (the replay's own
// model of a claimed cluster, where calls are few and large).
struct LinkCalibration {
  double ranks = 2;
  double small_bytes = 0, small_s = 0;
  double large_bytes = 0, large_s = 0;
  double bytes_s = 0;
  double latency_s = 0;
  double plain_bytes_s = 0;
  nlohmann::json to_json() const;
};
// Throws std::invalid_argument when ranks < 2, a size or time is not positive, or the large
// buffer is not both larger and slower than the small one.
LinkCalibration calibrate_link(double ranks, double small_bytes, double small_s,
                               double large_bytes, double large_s);

// One optimizer step's communication as the model predicts it for a run measured here.
//   bytes: collective_bytes_per_step(parallelism, params, G, bytes_per_value), less, for
//          fsdp_full_shard, one pass over the root unit's `root_params` (the unit holding the
//          embeddings, final norm and head stays gathered from the forward through the backward,
//          as FSDP keeps its root unit: one all-gather and one reduce-scatter, not two gathers);
//   calls: the collectives the step issues (collective_calls_per_step);
//   seconds = bytes / link.bytes_s + calls * link.latency_s.
struct CommPrediction {
  double bytes = 0;         // per rank, crossing its link
  double calls = 0;
  double bandwidth_s = 0;   // bytes / link.bytes_s
  double latency_s = 0;     // calls * link.latency_s
  double seconds = 0;       // their sum
  double plain_s = 0;       // collective_bytes_per_step(...) / link.plain_bytes_s: the replay's
                            // claimed-cluster formula (no root unit, no latency)
  nlohmann::json to_json() const;
};
CommPrediction predict_step_comm(const std::string& parallelism, double params, double root_params,
                                 double ranks, double bytes_per_value, double calls,
                                 const LinkCalibration& link);

// How an implementation lays out one step's collectives (for the latency term).
struct StepCollectives {
  double ddp_buckets = 1;       // ddp: gradient buckets, one all-reduce each (ddp_bucket_count)
  double layers = 0;            // fsdp_full_shard: sharded decoder-layer units (+ one root unit)
  double flats_per_unit = 1;    // fsdp_full_shard: flat parameters per unit, one collective each
                                // per gather or reduce-scatter (torch FSDP: 1; the trainer here:
                                // 2, its AdamW groups with and without weight decay)
  bool norm_all_reduce = false; // fsdp_full_shard: one all-reduce of the shards' squared gradient
                                // norms for global-norm clipping
};
// The collectives one optimizer step issues (gradients are reduced once per step, whatever the
// micro-batches):
//   ddp: ddp_buckets all-reduces;
//   fsdp_full_shard: flats_per_unit x (3 x layers + 2): per layer unit two all-gathers (forward,
//        backward) and one reduce-scatter, the root unit one of each; + 1 with norm_all_reduce;
//   none, or one rank: 0. Anything else throws std::invalid_argument.
double collective_calls_per_step(const std::string& parallelism, double ranks,
                                 const StepCollectives& s);
// Buckets of gradients cut from parameter groups of `group_bytes` each (bucketed separately, as
// the trainer buckets its AdamW groups), about bucket_bytes apiece: max(1, ceil(bytes / bucket))
// per non-empty group. Throws std::invalid_argument when bucket_bytes <= 0.
double ddp_bucket_count(const std::vector<double>& group_bytes, double bucket_bytes);

// The same Hockney line fitted to one collective kind over every size measured: weighted least
// squares of t = latency + link_bytes_of(kind, S, G) / bandwidth with weights 1 / t^2 (each point's
// relative error counts alike, so neither the smallest nor the largest buffer decides alone).
// Gloo's all-gather and reduce-scatter move a link byte several times slower than its all-reduce,
// so one link figure cannot fit FSDP's mix; a line per kind can. latency is clamped at 0. Throws
// std::invalid_argument for fewer than two sizes, a non-positive size or time, or data whose fitted
// bandwidth is not positive.
struct KindLink {
  std::string kind;
  double ranks = 2;
  double bytes_s = 0;    // link bytes per second
  double latency_s = 0;  // per call
  int points = 0;
  nlohmann::json to_json() const;
};
KindLink fit_kind_link(const std::string& kind, double ranks, const std::vector<double>& bytes,
                       const std::vector<double>& seconds);

// One step's collectives by kind, as the trainer issues them (per kind: calls and link bytes).
//   ddp: all_reduce: ddp_buckets calls over 2 (G-1)/G x params x bytes_per_value;
//   fsdp_full_shard (flats_per_unit flats per unit, layers sharded units and one root unit that
//   stays gathered through the step): all_gather: flats x (2 layers + 1) calls over
//   (G-1)/G x (2 (params - root_params) + root_params) x bytes; reduce_scatter: flats x
//   (layers + 1) calls over (G-1)/G x params x bytes; all_reduce: 1 call of 8 bytes with
//   norm_all_reduce. One micro-batch per rank (the layers' gathers and reduce-scatters repeat per
//   micro-batch otherwise). none or one rank: nothing.
struct KindTraffic {
  double calls = 0;
  double link_bytes = 0;
};
std::map<std::string, KindTraffic> step_traffic_by_kind(const std::string& parallelism,
                                                        double params, double root_params,
                                                        double ranks, double bytes_per_value,
                                                        const StepCollectives& s);
// Seconds of that traffic with a line per kind: sum over kinds of calls x latency + link bytes /
// bandwidth. A kind without a line throws std::invalid_argument naming it.
double predict_step_comm_by_kind(const std::map<std::string, KindTraffic>& traffic,
                                 const std::map<std::string, KindLink>& links);


// ---------------------------------------------------------------------------------------------
// Measurements and the prediction

// One measured part: median seconds of one unit of it at one timed length.
struct Measurement {
  Part part = Part::kDenseLayer;
  int64_t timed_seq_len = 0;    // tokens per sequence actually timed
  int64_t claimed_seq_len = 0;  // the claimed length it stands for (= timed unless shrunk)
  int64_t batch = 1;            // sequences per timed forward + backward
  double seconds = 0;           // median seconds of one unit (one layer; embed/head; optimizer)
  double params = 0;            // optimizer only: parameters the timed step updated
  Work timed;                   // work of that unit at the timed shapes (layer_work & co.)
  std::vector<double> samples;  // every timed repetition, seconds
};
nlohmann::json to_json(const Measurement& m);

struct Cluster {
  std::string gpu_type;       // hardware id
  int64_t gpus = 1;
  int64_t nodes = 1;
  int64_t gpus_per_node = 8;
  double intra_bytes_s = 0;   // NVLink per GPU, one direction
  double inter_bytes_s = 0;   // InfiniBand per GPU
  std::string interconnect;   // words
  double link_bytes_s() const;  // inter when nodes > 1, else intra (0 when there is none)
};

struct ReplayInputs {
  ledger::ArchSpec claimed;            // the claimed architecture
  std::vector<Measurement> measurements;
  Peak here;                           // this device, at the timed precision
  Peak there;                          // the claimed GPU at bf16 dense
  double there_fp8_flops = 0;          // its fp8 dense peak (used by the low end of fp8 claims)
  Cluster cluster;
  int64_t topk_groups = 0;             // node-limited routing (base.topk_groups); 0 = none
  std::string precision = "bf16";      // claimed
  std::string parallelism = "fsdp_full_shard";
  bool recompute = false;
  double sequences = 0;                // sequences the claimed run processes (all epochs)
  double steps = 0;                    // optimizer steps of the claimed run
  double micro_batch = 1;              // sequences per forward + backward per GPU
  bool fixed_length = false;           // every sequence is block_size long (packing/pretraining)
  double block_size = 0;
  ledger::Band seq_mean, seq_p90;      // tokens per sequence (unused when fixed_length)
  double overlap_low = 0, overlap_high = 0.8;
  ledger::Band gpu_hour_usd;           // price band of the claimed GPU type
  double claimed_wall_hours = 0;       // 0 = not stated
  double claimed_gpu_hours = 0;        // the figure the verdict compares; 0 = not stated
  std::string claimed_basis;           // which claim figure that is, in words
  double claimed_bytes_per_value = 2;  // activations/weights on the claimed run (bf16)
  double tolerance = 0.15;             // verdict slack below the band's low end
};

// Reads the claim side from a recipe: architecture, cluster (hardware table + [hardware]),
// sequences/steps/tokens, lengths, overlap, price band and the claimed figure. Measurements and
// `here` are left empty for the caller. Throws audit::InputError naming the key (unknown GPU
// type, no GPUs, inconsistent lengths).
ReplayInputs inputs_from_recipe(const recipe::Recipe& r);

struct ScenarioResult {
  std::string name;                     // "low" | "mid" | "high"
  double mean_len = 0, p90_len = 0;     // lengths used
  double overlap = 0;
  double peak_flops = 0;                // claimed-GPU peak used for compute
  double layer_s = 0;                   // per GPU: all layers' forward + backward
  double embed_head_s = 0;              // per GPU: embedding and head
  double optimizer_s = 0;               // per GPU: every optimizer step
  double compute_s = 0;                 // sum of the three
  double comm_s = 0;                    // per GPU collectives and all-to-all
  double wall_s = 0;                    // with overlap
  double tokens = 0;                    // tokens processed (all GPUs)
  double mfu = 0;                       // 6 N_active D / (GPUs x wall x bf16 peak)
};

struct Prediction {
  std::vector<ScenarioResult> scenarios;  // low, mid, high
  ledger::Band wall_hours, gpu_hours, cost_usd, mfu, tokens;
  ledger::Band tokens_per_gpu_s;  // tokens / (GPUs x wall): the per-GPU training throughput
  double claimed_wall_hours = 0, claimed_gpu_hours = 0;
  std::string claimed_basis;
  std::string verdict;  // supported | not supported | not reproducible here
  std::string reason;
  nlohmann::json to_json() const;
};

// Runs steps 1-4. Throws std::invalid_argument when a layer part has no measurement or a
// figure it needs is missing (message names it).
Prediction predict(const ReplayInputs& in);

// Seconds of one micro-batch of `part` at claimed length `len` on the claimed device (the
// efficiency interpolated in log length between that part's measurements; layers without their
// own measurement borrow the other layer kind's efficiency). Exposed for tests and tables.
double predicted_part_seconds(const ReplayInputs& in, Part part, double len, double peak_flops);

// Host memory bandwidth measured with a triad over 3 x `bytes_per_array` on `threads` threads
// (best of `repeats`); bytes/s. For the CPU's roofline (the hardware table has none).
double measure_host_bandwidth(int threads, double bytes_per_array = 64e6, int repeats = 5);

// Self-check: relative error (predicted - measured) / measured.
double relative_error(double predicted, double measured);

}  // namespace audit::replay
