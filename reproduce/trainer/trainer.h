// The trainer: AdamW with linear warmup then cosine, linear or constant lr (HF's schedules),
// global-norm gradient clipping, gradient accumulation over micro-batches, loss on masked tokens
// only, fp32 or bf16 autocast on CUDA, activation recompute, and checkpoint/resume of everything
// that decides the next step (model, optimizer state, data position, torch RNG and the trainer's
// std::mt19937_64) every checkpoint_every steps, so a resumed CPU run equals the uninterrupted one
// bit for bit. Every training key of a recipe's [train] section that the trainer reads is a
// settings::TrainSettings field; tests/torch/sft_parity_test.cpp checks a step's loss and
// gradients and a short run's loss curve against transformers and torch.optim.AdamW.
//
// Data contract (the data side, datasets/, produces these; the trainer only sees tensors):
//   tokens       [N, T] int64, token ids in [0, vocab)
//   loss_mask    [N, T] any numeric/bool dtype; nonzero at t means token t is a training target
//                (its prediction comes from position t-1; loss_mask[:, 0] is never used). For s1
//                style SFT: the trace and answer tokens are 1, the question and padding 0. When
//                packing, the first token of each packed segment should be 0 (it is not
//                predictable from the previous segment).
//   position_ids optional [N, T] int64; a position that does not continue the previous one
//                starts a new segment (attention stays inside it), see model.h.
// Each optimizer step takes the next `global_batch` samples of the epoch's permutation (the last
// batch of an epoch may be smaller, as HF's Trainer does: s1's 1,000 samples at batch 16 give
// 63 steps per epoch, 315 for 5 epochs); the loss is the mean over every target token of the
// whole global batch, however it is split into micro-batches.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "reproduce/distributed/distributed.h"  // World, CommLog: several ranks
#include "reproduce/model/model.h"        // CausalLM, ModelConfig
#include "reproduce/settings/settings.h"  // TrainSettings: the fields and their defaults

namespace audit::train {

// The trainer's configuration: settings::TrainSettings (reproduce/settings/settings.h), where
// every optimizer, schedule, precision, recompute and checkpoint field has its one default, shared
// with the recipe's [train] section (a recipe's schedule is TrainConfig(recipe.train)), plus what
// only a run here has. The trainer honours them all: schedule (cosine, linear, constant),
// precision ("fp32"; "bf16" = bf16 autocast on CUDA; "bf16" on the CPU and "fp8" are refused),
// recompute (CausalLMImpl::set_recompute), checkpoint_every (with checkpoint_path).
struct TrainConfig : settings::TrainSettings {
  TrainConfig() = default;
  explicit TrainConfig(const settings::TrainSettings& s) : settings::TrainSettings(s) {}

  int64_t max_steps = -1;      // > 0: stop after this many steps (the schedule spans them);
                               // else epochs passes over the data
  int64_t warmup_steps = -1;   // >= 0: linear warmup steps; -1: ceil(warmup_frac * total steps)
  bool shuffle = true;         // a fresh permutation of the samples each epoch (from seed)
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"; the model is moved there
  std::string checkpoint_path;  // "" = none; else train() saves a checkpoint here every
                                // checkpoint_every steps (when > 0) and after the last step,
                                // and resume_if_present() continues from it
  std::map<std::string, std::string> checkpoint_meta;  // stored in checkpoints (recipe hash...)
  // With a dist::World of more than one rank (the Trainer's last argument): "ddp" (every rank
  // holds the whole model; gradients are all-reduced in buckets of ddp_bucket_bytes, each bucket
  // started from autograd's hooks as soon as its gradients are ready, overlapping the rest of the
  // backward pass) or "fsdp_full_shard" (parameters, gradients and AdamW states sharded per
  // decoder layer; a layer's parameters are all-gathered before its forward and again before its
  // backward, the next layer's gather started ahead, and its gradients reduce-scattered after its
  // backward; embeddings, final norm and head form one root unit gathered for the whole step).
  // "none" with one rank. docs/distributed.md.
  std::string parallelism = "none";
  int64_t ddp_bucket_bytes = 25ll << 20;  // torch DDP's default bucket_cap_mb = 25
};

struct TrainData {
  torch::Tensor tokens;        // [N, T] int64
  torch::Tensor loss_mask;     // [N, T]
  torch::Tensor position_ids;  // optional [N, T] int64
};

// Where the data stream stands: the next step reads perm[cursor, cursor + batch) of `epoch`.
struct DataPosition {
  int64_t step = 0;    // optimizer steps completed
  int64_t epoch = 0;   // current epoch (0-based)
  int64_t cursor = 0;  // samples of this epoch already consumed
};

// What one optimizer step reports (the per-step callback receives it).
struct StepInfo {
  int64_t step = 0;           // 1-based number of this step
  int64_t total_steps = 0;
  int64_t epoch = 0;          // epoch the step's batch came from (0-based)
  double loss = 0;            // mean CE over the batch's target tokens
  double lr = 0;              // learning rate applied at this step
  double grad_norm = 0;       // global gradient norm before clipping
  int64_t samples = 0;        // samples in this step's batch
  int64_t tokens = 0;         // positions run through the model (rows x columns up to each
                              // micro-batch's last target column)
  int64_t target_tokens = 0;  // positions that counted in the loss
  int64_t tokens_total = 0;   // positions processed since step 0 (carried across resumes)
  double seconds = 0;         // wall time of this step
  double tokens_per_s = 0;    // tokens / seconds
  // With several ranks: loss, grad_norm, samples, tokens and target_tokens are the whole group's
  // (tokens_per_s too: the group's tokens over this rank's step time); local_tokens are the
  // positions this rank ran, and comm this rank's collectives during the step.
  int64_t local_tokens = 0;
  dist::CommLog comm;
  // ddp: gradient buckets all-reduced this step, and how many of them started from autograd's
  // hooks while backward was still running (the overlap).
  int64_t buckets = 0, buckets_in_backward = 0;
};
using StepCallback = std::function<void(const StepInfo&)>;

// The lr after warmup: TrainSettings::schedule's values.
enum class Schedule { cosine, linear, constant };
// "cosine" | "linear" | "constant"; anything else throws std::invalid_argument.
Schedule parse_schedule(const std::string& name);

// Learning rate for 0-based step `step` of `total`, as HF's get_*_schedule_with_warmup: all three
// warm up as lr * step / warmup while step < warmup (so step 0 runs at 0); then, with
// progress = (step - warmup) / max(1, total - warmup),
//   cosine   (get_cosine_schedule_with_warmup, s1): min_lr + (lr - min_lr) * 0.5 * (1 +
//            cos(pi * progress)), at least min_lr
//   linear   (get_linear_schedule_with_warmup): min_lr + (lr - min_lr) * max(0, 1 - progress)
//   constant (get_constant_schedule_with_warmup): lr (min_lr does not apply).
// With min_lr = 0 each is HF's formula exactly; min_lr > 0 floors the decay there.
double lr_schedule(Schedule kind, double lr, double min_lr, int64_t warmup, int64_t total,
                   int64_t step);

// bf16 autocast for forward passes on CUDA (like torch.autocast), restored on scope exit; does
// nothing when `on` is false. Used by the trainer and by replay's timed steps.
class CudaAutocast {
 public:
  explicit CudaAutocast(bool on);
  ~CudaAutocast();
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool on_;
  bool prev_enabled_ = false;
  at::ScalarType prev_dtype_ = at::kBFloat16;
};

// Sum of next-token cross-entropy over the target tokens (loss_mask[:, 1:] != 0), divided by
// `normalizer` (the global batch's target count, so micro-batches add up to the batch mean).
// logits [B, T, V] (any float dtype; computed in fp32), tokens and loss_mask [B, T].
torch::Tensor masked_lm_loss(const torch::Tensor& logits, const torch::Tensor& tokens,
                             const torch::Tensor& loss_mask, double normalizer);

class Trainer {
 public:
  // Validates the data against the model (shapes, dtypes, token range) and the settings
  // (schedule, precision on this device, checkpoint_every), throwing std::invalid_argument with
  // the reason; moves the model to cfg.device, sets its recompute switch from cfg.recompute,
  // builds AdamW. The model's parameters then live in the trainer's flat buffers: do not move the
  // model (->to()) while training.
  //
  // With `world` (not owned; it must outlive the trainer) of more than one rank, every rank builds
  // its trainer from the same model config, settings and data; rank 0's initial parameters are
  // broadcast to all, and each rank runs its share of every global batch (a contiguous slice of
  // the step's samples, sizes differing by at most one), as cfg.parallelism says. Every rank's
  // loss curve, and its parameters after consolidate(), equal a one-process run's up to fp32
  // summation order. cfg.parallelism other than ddp or fsdp_full_shard with several ranks throws
  // std::invalid_argument.
  Trainer(model::CausalLM model, TrainConfig cfg, TrainData data, dist::World* world = nullptr);
  ~Trainer();

  StepInfo step();  // one optimizer step; throws std::logic_error when done()
  // Runs the remaining steps, calling cb after each; returns their StepInfos. With
  // cfg.checkpoint_path set, saves a checkpoint there (save_checkpoint: atomically) after every
  // cfg.checkpoint_every-th step (when > 0) and after the last one, before calling cb.
  std::vector<StepInfo> train(const StepCallback& cb = {});
  // Loads cfg.checkpoint_path when it is set and the file exists (load_checkpoint: a file that
  // does not fit throws audit::InputError) and returns true; false when there is none.
  bool resume_if_present();
  bool done() const { return pos_.step >= total_steps_; }
  // fsdp_full_shard: all-gathers every unit's parameters back into the model on every rank, so it
  // can be evaluated or saved whole (collective). Nothing otherwise. train() calls it after the
  // last step; step() after it shards again.
  void consolidate();
  const dist::World* world() const { return world_; }
  int world_size() const;

  // Forward and backward over the given samples, split into micro-batches of cfg.micro_batch
  // (0: one);
  // adds to the parameters' .grad (does not zero or step). Returns the batch loss.
  // Adds the positions run through the model to *positions_run when given (trailing columns
  // after every row's last target are not run: they change neither loss nor gradients).
  double accumulate_gradients(const std::vector<int64_t>& samples,
                              int64_t* positions_run = nullptr);

  // One file: magic "AUDITCKP", version, JSON metadata (model config, data position, data
  // fingerprint, mt19937_64 state, cfg.checkpoint_meta, world size and parallelism), a torch
  // archive (model, optimizer, torch generator state) and a checksum. Written to PATH.tmp then
  // renamed. With several ranks it is collective: ddp has rank 0 write PATH (the replicas are
  // equal); fsdp_full_shard has every rank write its shards and their AdamW states to
  // sharded_checkpoint_path(PATH, rank, world) and rank 0 write PATH with the metadata only.
  void save_checkpoint(const std::string& path) const;
  // Restores all of it (collective with several ranks). A file that is not such a checkpoint, is
  // damaged, or does not fit this model and data (config, N, T, data fingerprint, batch size), or
  // was written by another world size or parallelism, throws audit::InputError naming it.
  void load_checkpoint(const std::string& path);

  double lr_at(int64_t step) const;  // lr_schedule with this run's settings
  int64_t total_steps() const { return total_steps_; }
  int64_t warmup_steps() const { return warmup_steps_; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t accumulation_steps() const;
  const DataPosition& position() const { return pos_; }
  const TrainConfig& config() const { return cfg_; }
  model::CausalLM& model() { return model_; }

 private:
  // AdamW over flat buffers: each group's parameters are views into one contiguous tensor, and
  // after backward their gradients are gathered into one too, so clipping and the update are a
  // handful of kernels (torch's fused AdamW) instead of ~10 small ops per parameter tensor.
  struct ParamGroup {
    std::string name;                   // "decay" or "no_decay"
    double weight_decay = 0;
    std::vector<torch::Tensor> params;  // views into flat
    torch::Tensor flat, exp_avg, exp_avg_sq, step;  // step: fp32 scalar, as the fused kernel wants
  };
  std::vector<int64_t> next_batch();  // advances the data position
  // Positions of `samples` that count in the loss (loss_mask[:, 1:] != 0): the loss's divisor.
  int64_t target_count(const std::vector<int64_t>& samples) const;
  std::string data_fingerprint() const;
  double clip_and_update(double lr);  // returns the pre-clip gradient norm
  void check_parameters_in_place() const;

  // Several ranks (trainer_dist.cpp): the DDP reducer and the FSDP units.
  struct Ddp;
  struct Fsdp;
  std::vector<int64_t> local_slice(const std::vector<int64_t>& samples) const;
  void setup_distributed();
  double accumulate_distributed(const std::vector<int64_t>& samples, int64_t* positions_run);
  double fsdp_clip_and_update(double lr);
  void write_shards(torch::serialize::OutputArchive& ar) const;
  void read_shards(torch::serialize::InputArchive& ar, const std::string& path);
  void unit_release_all();
  void ensure_sharded();
  // Forward and backward of one micro-batch: the loss over `samples` divided by `normalizer`,
  // times `weight` (0 for a rank's padding micro-batch); returns the weighted loss.
  double run_micro_batch(const std::vector<int64_t>& samples, double normalizer, double weight,
                         int64_t* positions_run);
  dist::World* world_ = nullptr;
  std::unique_ptr<Ddp> ddp_;
  std::unique_ptr<Fsdp> fsdp_;

  model::CausalLM model_;
  TrainConfig cfg_;
  TrainData data_;
  torch::Device device_;
  std::vector<ParamGroup> groups_;
  std::vector<torch::Tensor> params_;
  std::mt19937_64 rng_;
  std::vector<int64_t> perm_;  // this epoch's order (drawn when cursor == 0)
  DataPosition pos_;
  int64_t tokens_total_ = 0;
  int64_t total_steps_ = 0, warmup_steps_ = 0, steps_per_epoch_ = 0;
  Schedule schedule_ = Schedule::cosine;  // cfg_.schedule, parsed
  mutable std::string fingerprint_;
};

// The metadata of a checkpoint file (checked like load_checkpoint does) and its model weights,
// for stages that only evaluate: loads the weights into `model` (config must match).
struct CheckpointInfo {
  model::ModelConfig model;
  DataPosition position;
  int64_t tokens_total = 0;
  int world_size = 1;                // ranks that wrote it
  std::string parallelism = "none";  // their TrainConfig::parallelism
  std::map<std::string, std::string> meta;
};
CheckpointInfo read_checkpoint_info(const std::string& path);
// Where rank `rank` of `world` keeps its shards of an fsdp_full_shard checkpoint at `path`:
// PATH.rank<R>-of-<W>.
std::string sharded_checkpoint_path(const std::string& path, int rank, int world);
void load_checkpoint_weights(const std::string& path, model::CausalLM& model);

// Throughput of full train steps (forward, masked loss, backward, clip, AdamW) on random tokens:
// the C++ side of `audit bench train` and bench/train_bench.cpp.
struct Throughput {
  int64_t tokens_per_step = 0;
  int64_t steps = 0;
  double seconds = 0;           // all timed steps (after warmup)
  double seconds_per_step = 0;  // the median timed step (robust to a busy machine)
  double tokens_per_s = 0;      // tokens_per_step / seconds_per_step
  double cpu_seconds = 0;       // process CPU time over the timed steps (all threads)
  double final_loss = 0;
};
// The benchmark models: "mini" is the base of recipes/s1-mini.toml, read from it (now hidden 64,
// 3 layers, 4/2 heads of 16, ffn 256, vocab 264, 0.22M parameters); "small" hidden 128, 4 layers,
// 8/2 heads of 16, ffn 384, vocab 272, 0.83M (also the replay self-check's model); "large" about
// 11x that (hidden 320, 8 layers, 10/2 heads of 32, ffn 960, 9.5M); "50m" a ~50M-parameter
// one (vocab 8192, hidden 512, 14 layers, 8/2 heads of 64, ffn 1536, 50.6M). The fields not named
// keep their defaults (settings::ModelSettings). Throws std::invalid_argument for another name.
model::ModelConfig bench_model_config(const std::string& size);

// `precision` is TrainSettings::precision ("bf16": autocast, CUDA only).
Throughput measure_train_throughput(const model::ModelConfig& mc, int64_t batch, int64_t seq,
                                    int warmup_steps, int timed_steps,
                                    const std::string& device = "cpu", uint64_t seed = 0,
                                    const std::string& precision = "fp32");

}  // namespace audit::train
