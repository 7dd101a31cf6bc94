// The trainer (see trainer.h): data order, schedule, accumulation, clipping, AdamW, checkpoints.
#include "reproduce/trainer/trainer.h"
#include "reproduce/trainer/trainer_dist.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <nlohmann/json.hpp>

#include "common/errors.h"  // audit::InputError for bad checkpoints
#include "reproduce/recipe/recipe.h"  // bench_model_config("mini")
#include "common/resources.h"

namespace audit::train {

namespace {

constexpr char kMagic[8] = {'A', 'U', 'D', 'I', 'T', 'C', 'K', 'P'};
// 2: the metadata's model config holds every settings::ModelSettings field (arch, max_position,
// MoE, MLA, MTP) and its train config every settings::TrainSettings field under the recipe's keys.
constexpr uint32_t kCheckpointVersion = 2;
constexpr double kPi = 3.14159265358979323846;

// FNV-1a, 64 bit: the checkpoint checksum and the data fingerprint (not a security measure).
struct Fnv64 {
  uint64_t h = 1469598103934665603ull;
  void add(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

void put_u32(std::string& s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t get_le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// Every ModelSettings field under its name (settings.h's one list).
nlohmann::json config_to_json(const model::ModelConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  settings::ModelSettings::for_each_field([&](const char* name, auto field) { j[name] = c.*field; });
  return j;
}

model::ModelConfig config_from_json(const nlohmann::json& j) {
  model::ModelConfig c;
  settings::ModelSettings::for_each_field([&](const char* name, auto field) {
    c.*field = j.at(name).get<std::decay_t<decltype(c.*field)>>();
  });
  return c;
}

// A checkpoint file, checked and split: metadata and the torch archive bytes.
struct RawCheckpoint {
  nlohmann::json meta;
  std::string archive;
};

RawCheckpoint read_raw(const std::string& path) {
  auto bad = [&](const std::string& key, const std::string& what) -> InputError {
    return InputError(path, 0, 0, key, what);
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad("", std::string("cannot open checkpoint: ") + std::strerror(errno));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t fixed = 8 + 4 + 8 + 8 + 8;  // magic, version, two lengths, checksum
  if (s.size() < fixed || std::memcmp(s.data(), kMagic, 8) != 0)
    throw bad("", "not an audit checkpoint (magic \"AUDITCKP\" missing)");
  const auto version = static_cast<uint32_t>(get_le(s, 8, 4));
  if (version != kCheckpointVersion)
    throw bad("", "checkpoint format version " + std::to_string(version) + ", this build reads " +
                      std::to_string(kCheckpointVersion));
  Fnv64 sum;
  sum.add(s.data(), s.size() - 8);
  if (sum.h != get_le(s, s.size() - 8, 8))
    throw bad("", "checksum mismatch: the checkpoint is truncated or damaged");
  const uint64_t meta_len = get_le(s, 12, 8);
  if (meta_len > s.size() - fixed) throw bad("", "metadata length exceeds the file");
  const uint64_t blob_at = 20 + meta_len;
  const uint64_t blob_len = get_le(s, blob_at, 8);
  if (blob_len != s.size() - fixed - meta_len) throw bad("", "archive length does not match the file");
  RawCheckpoint raw;
  try {
    raw.meta = nlohmann::json::parse(s.substr(20, meta_len));
  } catch (const nlohmann::json::exception& e) {
    throw bad("", std::string("metadata is not valid JSON: ") + e.what());
  }
  raw.archive = s.substr(blob_at + 8, blob_len);
  return raw;
}

model::ModelConfig checked_config(const RawCheckpoint& raw, const std::string& path,
                                  const model::ModelConfig& expect) {
  model::ModelConfig c;
  try {
    c = config_from_json(raw.meta.at("model"));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, 0, 0, "model", std::string("bad model config: ") + e.what());
  }
  if (c != expect)
    throw InputError(path, 0, 0, "model",
                     "checkpoint model (" + c.to_string() + ") differs from this model (" +
                         expect.to_string() + ")");
  return c;
}

void load_archive(torch::serialize::InputArchive& ar, const RawCheckpoint& raw,
                  const std::string& path, const torch::Device& device) {
  try {
    std::istringstream is(raw.archive);
    ar.load_from(is, device);
  } catch (const c10::Error& e) {
    throw InputError(path, 0, 0, "", std::string("tensor archive unreadable: ") + e.what_without_backtrace());
  }
}


}  // namespace

// One checkpoint file (the format of Trainer::save_checkpoint), written to PATH.tmp and renamed.
void write_checkpoint_file(const std::string& path, const nlohmann::json& meta,
                           torch::serialize::OutputArchive& archive);

namespace {

// CPU time of this process (all threads), for throughput per core-second on a shared machine.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Schedule parse_schedule(const std::string& name) {
  if (name == "cosine") return Schedule::cosine;
  if (name == "linear") return Schedule::linear;
  if (name == "constant") return Schedule::constant;
  throw std::invalid_argument("trainer: schedule must be cosine, linear or constant, not '" +
                              name + "'");
}

double lr_schedule(Schedule kind, double lr, double min_lr, int64_t warmup, int64_t total,
                   int64_t step) {
  // HF's get_{cosine,linear,constant}_schedule_with_warmup, with a floor at min_lr.
  if (step < warmup) return lr * static_cast<double>(step) / static_cast<double>(warmup);
  if (kind == Schedule::constant) return lr;
  const double progress = static_cast<double>(step - warmup) /
                          static_cast<double>(std::max<int64_t>(1, total - warmup));
  const double factor = kind == Schedule::linear
                            ? std::max(0.0, 1.0 - progress)
                            : std::max(0.0, 0.5 * (1.0 + std::cos(kPi * progress)));
  return min_lr + (lr - min_lr) * factor;
}

torch::Tensor masked_lm_loss(const torch::Tensor& logits, const torch::Tensor& tokens,
                             const torch::Tensor& loss_mask, double normalizer) {
  const int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  // Position t predicts token t+1; the last position predicts nothing (target -100). Shifting
  // the targets rather than slicing the logits avoids copying them (and the slice's backward).
  auto targets = torch::full({B, T}, -100, tokens.options());
  targets.narrow(1, 0, T - 1)
      .copy_(tokens.narrow(1, 1, T - 1).masked_fill(loss_mask.narrow(1, 1, T - 1) == 0, -100));
  auto summed = torch::nn::functional::cross_entropy(
      logits.reshape({B * T, V}).to(torch::kFloat), targets.reshape({B * T}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  return summed / std::max(1.0, normalizer);
}

Trainer::Trainer(model::CausalLM model, TrainConfig cfg, TrainData data, dist::World* world)
    : world_(world), model_(std::move(model)), cfg_(std::move(cfg)), data_(std::move(data)),
      device_(cfg_.device), rng_(static_cast<uint64_t>(cfg_.seed)) {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("trainer: " + what);
  };
  need(data_.tokens.defined() && data_.tokens.dim() == 2 && data_.tokens.size(0) > 0 &&
           data_.tokens.size(1) >= 2,
       "tokens must be a non-empty [N, T] tensor with T >= 2");
  need(data_.tokens.scalar_type() == torch::kLong, "tokens must be int64");
  need(data_.loss_mask.defined() && data_.loss_mask.sizes() == data_.tokens.sizes(),
       "loss_mask must have the shape of tokens");
  if (data_.position_ids.defined())
    need(data_.position_ids.sizes() == data_.tokens.sizes() &&
             data_.position_ids.scalar_type() == torch::kLong,
         "position_ids must be int64 with the shape of tokens");
  const int64_t vocab = model_->config().vocab;
  need(data_.tokens.min().item<int64_t>() >= 0 && data_.tokens.max().item<int64_t>() < vocab,
       "token ids must lie in [0, " + std::to_string(vocab) + ")");
  need(cfg_.global_batch > 0 && cfg_.micro_batch >= 0,
       "global_batch must be positive and micro_batch not negative");
  need(cfg_.epochs > 0 || cfg_.max_steps > 0, "epochs or max_steps must be positive");
  schedule_ = parse_schedule(cfg_.schedule);
  need(cfg_.checkpoint_every >= 0, "checkpoint_every must not be negative");
  need(cfg_.precision == "fp32" || cfg_.precision == "bf16" || cfg_.precision == "fp8",
       "precision must be fp32, bf16 or fp8, not '" + cfg_.precision + "'");
  need(cfg_.precision != "fp8",
       "precision fp8 is not trained here (FP8 matmuls are not built); train in \"bf16\" on "
       "CUDA or \"fp32\"");
  need(cfg_.precision != "bf16" || device_.is_cuda(),
       "precision bf16 means bf16 autocast on a CUDA device; on " + device_.str() +
           " train in \"fp32\" (train.precision = \"fp32\")");
  data_.tokens = data_.tokens.to(torch::kCPU).contiguous();
  data_.loss_mask = data_.loss_mask.to(torch::kCPU).contiguous();
  if (data_.position_ids.defined()) data_.position_ids = data_.position_ids.to(torch::kCPU).contiguous();

  if (cfg_.threads > 0) torch::set_num_threads(static_cast<int>(cfg_.threads));
  const int64_t n = data_.tokens.size(0);
  steps_per_epoch_ = (n + cfg_.global_batch - 1) / cfg_.global_batch;
  total_steps_ = cfg_.max_steps > 0 ? cfg_.max_steps : cfg_.epochs * steps_per_epoch_;
  warmup_steps_ = cfg_.warmup_steps >= 0
                      ? cfg_.warmup_steps
                      : static_cast<int64_t>(std::ceil(cfg_.warmup_frac * total_steps_));

  model_->to(device_);
  model_->train();
  model_->set_recompute(cfg_.recompute);
  // Two groups as HF's Trainer and nanoGPT do: decay matrices/embeddings, not biases or norms.
  // Each group's parameters are re-pointed into one flat buffer (values unchanged).
  torch::NoGradGuard no_grad;
  groups_.resize(2);
  groups_[0].name = "decay";
  groups_[0].weight_decay = cfg_.weight_decay;
  groups_[1].name = "no_decay";
  for (auto& p : model_->parameters()) {
    groups_[p.dim() >= 2 ? 0 : 1].params.push_back(p);
    params_.push_back(p);
  }
  for (auto& g : groups_) {
    if (g.params.empty()) continue;
    std::vector<torch::Tensor> pieces;
    for (auto& p : g.params) pieces.push_back(p.detach().reshape(-1));
    g.flat = torch::cat(pieces);
    int64_t offset = 0;
    for (auto& p : g.params) {
      p.set_data(g.flat.narrow(0, offset, p.numel()).view(p.sizes()));
      offset += p.numel();
    }
    g.exp_avg = torch::zeros_like(g.flat);
    g.exp_avg_sq = torch::zeros_like(g.flat);
    g.step = torch::zeros({}, g.flat.options());
  }
  perm_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm_[i] = i;
  setup_distributed();
}

void Trainer::check_parameters_in_place() const {
  for (const auto& g : groups_)
    if (!g.params.empty() && g.params.front().data_ptr() != g.flat.data_ptr())
      throw std::logic_error(
          "trainer: the model's parameters were replaced after the trainer was built (e.g. by "
          "model->to()); move the model before building the trainer");
}

double Trainer::clip_and_update(double lr) {
  torch::NoGradGuard no_grad;
  // Gather each group's gradients into one flat tensor; p.grad() becomes a view of it.
  std::vector<torch::Tensor> flat_grads;
  double sum_sq = 0;
  for (auto& g : groups_) {
    if (g.params.empty()) {
      flat_grads.emplace_back();
      continue;
    }
    torch::Tensor flat_grad;
    if (ddp_) {  // the parameters' .grad are already views of it, all-reduced
      flat_grad = ddp_->flat_grads[flat_grads.size()];
    } else {
      std::vector<torch::Tensor> pieces;
      for (auto& p : g.params)
        pieces.push_back(p.grad().defined() ? p.grad().reshape(-1)
                                            : torch::zeros({p.numel()}, p.options()));
      flat_grad = torch::cat(pieces);
      int64_t offset = 0;
      for (auto& p : g.params) {
        p.mutable_grad() = flat_grad.narrow(0, offset, p.numel()).view(p.sizes());
        offset += p.numel();
      }
    }
    const double norm = flat_grad.norm().item<double>();
    sum_sq += norm * norm;
    flat_grads.push_back(flat_grad);
  }
  // Global-norm clipping as torch.nn.utils.clip_grad_norm_ (coefficient max / (norm + 1e-6)).
  const double total_norm = std::sqrt(sum_sq);
  if (cfg_.grad_clip > 0) {
    const double coef = cfg_.grad_clip / (total_norm + 1e-6);
    if (coef < 1.0)
      for (auto& fg : flat_grads)
        if (fg.defined()) fg.mul_(coef);
  }
  for (size_t i = 0; i < groups_.size(); ++i) {
    auto& g = groups_[i];
    if (g.params.empty()) continue;
    g.step.add_(1);  // the fused kernel reads the step count; the caller advances it
    at::_fused_adamw_({g.flat}, {flat_grads[i]}, {g.exp_avg}, {g.exp_avg_sq}, {}, {g.step}, lr,
                      cfg_.beta1, cfg_.beta2, g.weight_decay, cfg_.adam_eps, /*amsgrad=*/false,
                      /*maximize=*/false);
  }
  return total_norm;
}

int64_t Trainer::accumulation_steps() const {
  const int64_t micro = cfg_.micro_batch_or_global();
  return (cfg_.global_batch + micro - 1) / micro;
}

double Trainer::lr_at(int64_t step) const {
  return lr_schedule(schedule_, cfg_.lr, cfg_.lr * cfg_.min_lr_frac, warmup_steps_, total_steps_,
                     step);
}

std::vector<int64_t> Trainer::next_batch() {
  const int64_t n = data_.tokens.size(0);
  if (pos_.cursor == 0) {
    for (int64_t i = 0; i < n; ++i) perm_[i] = i;
    if (cfg_.shuffle)  // Fisher-Yates with the trainer's own generator: portable and resumable
      for (int64_t i = n - 1; i > 0; --i)
        std::swap(perm_[i], perm_[rng_() % static_cast<uint64_t>(i + 1)]);
  }
  const int64_t take = std::min(cfg_.global_batch, n - pos_.cursor);
  std::vector<int64_t> batch(perm_.begin() + pos_.cursor, perm_.begin() + pos_.cursor + take);
  pos_.cursor += take;
  if (pos_.cursor == n) {
    pos_.cursor = 0;
    ++pos_.epoch;
  }
  return batch;
}

namespace {
// Index of the last column holding a target in any row of mask [rows, T] (0 when none).
int64_t last_target_column(const torch::Tensor& mask) {
  auto any = (mask != 0).any(0);  // [T]
  auto idx = any.nonzero();
  return idx.numel() == 0 ? 0 : idx.max().item<int64_t>();
}
}  // namespace

int64_t Trainer::target_count(const std::vector<int64_t>& samples) const {
  const int64_t T = data_.tokens.size(1);
  auto mask = data_.loss_mask.index_select(0, torch::tensor(samples, torch::kLong));
  return (mask.narrow(1, 1, T - 1) != 0).sum().item<int64_t>();
}

double Trainer::accumulate_gradients(const std::vector<int64_t>& samples, int64_t* positions_run) {
  const double normalizer = static_cast<double>(target_count(samples));
  const int64_t micro_size = cfg_.micro_batch_or_global();
  double total = 0;
  for (int64_t at = 0; at < static_cast<int64_t>(samples.size()); at += micro_size) {
    const int64_t len = std::min<int64_t>(micro_size, samples.size() - at);
    std::vector<int64_t> part(samples.begin() + at, samples.begin() + at + len);
    total += run_micro_batch(part, normalizer, 1.0, positions_run);
  }
  return total;
}

double Trainer::run_micro_batch(const std::vector<int64_t>& samples, double normalizer,
                                double weight, int64_t* positions_run) {
  const bool autocast = cfg_.precision == "bf16";  // on CUDA: the constructor refuses the rest
  const int64_t T = data_.tokens.size(1);
  auto micro = torch::tensor(samples, torch::kLong);
  const int64_t len = micro.size(0);
  auto ids = data_.tokens.index_select(0, micro);
  auto mask = data_.loss_mask.index_select(0, micro);
  torch::Tensor positions;
  if (data_.position_ids.defined()) positions = data_.position_ids.index_select(0, micro);
  // Columns after the last target of every row change no loss term and, under causal
  // attention, no earlier position: drop them (padded rows are mostly padding at the end).
  // The loss and gradients are those of the full rows.
  const int64_t keep = last_target_column(mask) + 1;
  if (keep < T) {
    ids = ids.narrow(1, 0, keep);
    mask = mask.narrow(1, 0, keep);
    if (positions.defined()) positions = positions.narrow(1, 0, keep);
  }
  if (positions_run != nullptr) *positions_run += len * keep;
  ids = ids.to(device_);
  mask = mask.to(device_);
  if (positions.defined()) positions = positions.to(device_);
  torch::Tensor loss;
  {
    CudaAutocast guard(autocast);
    auto logits = model_->forward(ids, positions);
    loss = masked_lm_loss(logits, ids, mask, normalizer);
  }
  if (weight != 1.0) loss = loss * weight;
  loss.backward();
  return loss.detach().item<double>();
}

StepInfo Trainer::step() {
  if (done()) throw std::logic_error("trainer: all " + std::to_string(total_steps_) + " steps done");
  const auto t0 = std::chrono::steady_clock::now();
  StepInfo info;
  info.epoch = pos_.epoch;
  info.total_steps = total_steps_;
  info.lr = lr_at(pos_.step);
  check_parameters_in_place();
  const auto samples = next_batch();
  int64_t positions_run = 0;
  if (world_size() > 1) {
    ensure_sharded();
    const dist::CommLog before = world_->log();
    const double local_loss = accumulate_distributed(samples, &positions_run);
    info.grad_norm = fsdp_ ? fsdp_clip_and_update(info.lr) : clip_and_update(info.lr);
    info.loss = world_->sum(local_loss);
    info.local_tokens = positions_run;
    positions_run = static_cast<int64_t>(std::llround(world_->sum(double(positions_run))));
    info.comm = world_->log() - before;
    if (ddp_) {
      info.buckets = static_cast<int64_t>(ddp_->buckets.size());
      info.buckets_in_backward = static_cast<int64_t>(ddp_->started_in_backward);
    }
  } else {
    for (auto& p : params_) p.mutable_grad().reset();  // zero_grad(set_to_none)
    info.loss = accumulate_gradients(samples, &positions_run);
    info.grad_norm = clip_and_update(info.lr);
    info.local_tokens = positions_run;
  }
  ++pos_.step;

  info.step = pos_.step;
  info.samples = static_cast<int64_t>(samples.size());
  info.tokens = positions_run;
  info.target_tokens = target_count(samples);
  tokens_total_ += info.tokens;
  info.tokens_total = tokens_total_;
  info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  info.tokens_per_s = info.seconds > 0 ? info.tokens / info.seconds : 0;
  return info;
}

std::vector<StepInfo> Trainer::train(const StepCallback& cb) {
  std::vector<StepInfo> out;
  while (!done()) {
    out.push_back(step());
    if (!cfg_.checkpoint_path.empty() &&
        (done() || (cfg_.checkpoint_every > 0 && pos_.step % cfg_.checkpoint_every == 0)))
      save_checkpoint(cfg_.checkpoint_path);
    if (cb) cb(out.back());
  }
  consolidate();  // fsdp_full_shard: the whole model back on every rank
  return out;
}

bool Trainer::resume_if_present() {
  if (cfg_.checkpoint_path.empty()) return false;
  std::ifstream probe(cfg_.checkpoint_path, std::ios::binary);
  if (!probe) return false;
  probe.close();
  load_checkpoint(cfg_.checkpoint_path);
  return true;
}

std::string Trainer::data_fingerprint() const {
  if (!fingerprint_.empty()) return fingerprint_;
  Fnv64 f;
  auto add = [&](const torch::Tensor& t) {
    auto c = t.to(torch::kLong).contiguous();
    f.add(c.data_ptr(), c.numel() * c.element_size());
  };
  add(data_.tokens);
  add(data_.loss_mask != 0);
  if (data_.position_ids.defined()) add(data_.position_ids);
  fingerprint_ = f.hex();
  return fingerprint_;
}

void Trainer::save_checkpoint(const std::string& path) const {
  nlohmann::json meta;
  meta["format"] = "audit-checkpoint";
  meta["model"] = config_to_json(model_->config());
  meta["step"] = pos_.step;
  meta["epoch"] = pos_.epoch;
  meta["cursor"] = pos_.cursor;
  meta["perm"] = perm_;
  meta["tokens_total"] = tokens_total_;
  std::ostringstream rng_state;
  rng_state << rng_;
  meta["rng_mt19937_64"] = rng_state.str();
  meta["data"] = {{"samples", data_.tokens.size(0)},
                  {"seq", data_.tokens.size(1)},
                  {"fingerprint", data_fingerprint()}};
  meta["train"] = {{"warmup_steps", warmup_steps_},
                   {"total_steps", total_steps_},
                   {"max_steps", cfg_.max_steps},
                   {"shuffle", cfg_.shuffle}};
  settings::TrainSettings::for_each_field(
      [&](const char* name, auto field) { meta["train"][name] = cfg_.*field; });
  meta["meta"] = cfg_.checkpoint_meta;
  meta["torch_version"] = TORCH_VERSION;

  meta["world_size"] = world_size();
  meta["parallelism"] = world_size() > 1 ? cfg_.parallelism : std::string("none");

  auto rng_into = [&](torch::serialize::OutputArchive& ar) {
    ar.write("rng_torch_cpu", at::detail::getDefaultCPUGenerator().get_state());
    if (device_.is_cuda())
      ar.write("rng_torch_device", at::globalContext().defaultGenerator(device_).get_state());
  };
  if (fsdp_) {
    // Every rank its shards; rank 0 the metadata that names them.
    torch::serialize::OutputArchive shards;
    write_shards(shards);
    rng_into(shards);
    nlohmann::json shard_meta = meta;
    shard_meta["rank"] = world_->rank();
    write_checkpoint_file(sharded_checkpoint_path(path, world_->rank(), world_->size()),
                          shard_meta, shards);
    if (world_->is_root()) {
      torch::serialize::OutputArchive index;
      write_checkpoint_file(path, meta, index);
    }
    world_->barrier();
    return;
  }
  if (world_ == nullptr || world_->is_root()) {
    torch::serialize::OutputArchive root, model_ar;
    model_->save(model_ar);
    root.write("model", model_ar);
    for (const auto& g : groups_) {
      if (g.params.empty()) continue;
      root.write("adamw." + g.name + ".exp_avg", g.exp_avg);
      root.write("adamw." + g.name + ".exp_avg_sq", g.exp_avg_sq);
      root.write("adamw." + g.name + ".step", g.step);
    }
    rng_into(root);
    write_checkpoint_file(path, meta, root);
  }
  if (world_size() > 1) world_->barrier();  // ddp: rank 0 wrote the replicas' one file
}

void write_checkpoint_file(const std::string& path, const nlohmann::json& meta,
                           torch::serialize::OutputArchive& archive) {
  std::ostringstream blob;
  archive.save_to(blob);
  const std::string m = meta.dump();
  const std::string b = blob.str();
  std::string out(kMagic, 8);
  put_u32(out, kCheckpointVersion);
  put_u64(out, m.size());
  out += m;
  put_u64(out, b.size());
  out += b;
  Fnv64 sum;
  sum.add(out.data(), out.size());
  put_u64(out, sum.h);

  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write checkpoint " + tmp + ": " + std::strerror(errno));
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    f.flush();
    if (!f) throw std::runtime_error("write failed on checkpoint " + tmp + " (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
}

std::string sharded_checkpoint_path(const std::string& path, int rank, int world) {
  return path + ".rank" + std::to_string(rank) + "-of-" + std::to_string(world);
}

void Trainer::load_checkpoint(const std::string& path) {
  RawCheckpoint raw = read_raw(path);
  checked_config(raw, path, model_->config());
  auto bad = [&](const std::string& key, const std::string& what) {
    return InputError(path, 0, 0, key, what);
  };
  DataPosition pos;
  std::vector<int64_t> perm;
  std::string rng_state;
  int64_t tokens_total = 0;
  try {
    const auto& d = raw.meta.at("data");
    if (d.at("samples").get<int64_t>() != data_.tokens.size(0) ||
        d.at("seq").get<int64_t>() != data_.tokens.size(1))
      throw bad("data", "checkpoint was trained on " + std::to_string(d.at("samples").get<int64_t>()) +
                            " x " + std::to_string(d.at("seq").get<int64_t>()) +
                            " tokens, this data is " + std::to_string(data_.tokens.size(0)) + " x " +
                            std::to_string(data_.tokens.size(1)));
    if (d.at("fingerprint").get<std::string>() != data_fingerprint())
      throw bad("data.fingerprint", "the training data differ from the checkpoint's");
    if (raw.meta.at("train").at("global_batch").get<int64_t>() != cfg_.global_batch)
      throw bad("train.global_batch", "checkpoint used global batch " +
                                          std::to_string(raw.meta.at("train").at("global_batch").get<int64_t>()) +
                                          ", this run " + std::to_string(cfg_.global_batch));
    pos.step = raw.meta.at("step").get<int64_t>();
    pos.epoch = raw.meta.at("epoch").get<int64_t>();
    pos.cursor = raw.meta.at("cursor").get<int64_t>();
    perm = raw.meta.at("perm").get<std::vector<int64_t>>();
    rng_state = raw.meta.at("rng_mt19937_64").get<std::string>();
    tokens_total = raw.meta.at("tokens_total").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    throw bad("", std::string("bad checkpoint metadata: ") + e.what());
  }
  const int64_t n = data_.tokens.size(0);
  if (static_cast<int64_t>(perm.size()) != n || pos.cursor < 0 || pos.cursor >= n || pos.step < 0)
    throw bad("cursor", "data position does not fit the data");
  std::mt19937_64 rng;
  std::istringstream rs(rng_state);
  rs >> rng;
  if (rs.fail()) throw bad("rng_mt19937_64", "unreadable generator state");

  const int written_world = raw.meta.value("world_size", 1);
  const std::string written_par = raw.meta.value("parallelism", std::string("none"));
  const std::string this_par = world_size() > 1 ? cfg_.parallelism : std::string("none");
  if (written_world != world_size() || written_par != this_par)
    throw bad("world_size",
              "checkpoint written by " + std::to_string(written_world) + " rank(s) with " +
                  "parallelism " + written_par + "; this run has " + std::to_string(world_size()) +
                  " rank(s) with " + this_par + ". A checkpoint resumes only at the world size "
                  "and parallelism that wrote it (a sharded one cannot be read otherwise, and a "
                  "resumed run is the run it continues); start without it (another --work-dir) "
                  "or run as it was written");
  if (fsdp_) {
    const std::string own = sharded_checkpoint_path(path, world_->rank(), world_->size());
    RawCheckpoint shard_raw = read_raw(own);
    if (shard_raw.meta.value("step", int64_t(-1)) != pos.step ||
        shard_raw.meta.value("rank", -1) != world_->rank())
      throw InputError(own, 0, 0, "step",
                       "this rank's shard file is not from the checkpoint " + path +
                           " names (step " + std::to_string(pos.step) + ", rank " +
                           std::to_string(world_->rank()) + ")");
    torch::serialize::InputArchive shards;
    load_archive(shards, shard_raw, own, device_);
    try {
      read_shards(shards, own);
      torch::Tensor cpu_state;
      shards.read("rng_torch_cpu", cpu_state);
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(cpu_state.to(torch::kCPU));
    } catch (const c10::Error& e) {
      throw InputError(own, 0, 0, "", std::string("shard archive does not fit this trainer: ") +
                                          e.what_without_backtrace());
    }
    pos_ = pos;
    perm_ = std::move(perm);
    rng_ = rng;
    tokens_total_ = tokens_total;
    return;
  }

  torch::serialize::InputArchive root, model_ar;
  load_archive(root, raw, path, device_);
  try {
    root.read("model", model_ar);
    // Module::load re-points parameters at the archive's tensors; load into a scratch model and
    // copy, so the parameters stay views of the optimizer's flat buffers.
    model::CausalLM loaded(model_->config());
    loaded->to(device_);
    loaded->load(model_ar);
    torch::NoGradGuard no_grad;
    auto dst = model_->named_parameters();
    for (const auto& p : loaded->named_parameters()) dst[p.key()].copy_(p.value());
    for (auto& g : groups_) {
      if (g.params.empty()) continue;
      const std::pair<const char*, torch::Tensor*> fields[] = {
          {"exp_avg", &g.exp_avg}, {"exp_avg_sq", &g.exp_avg_sq}, {"step", &g.step}};
      for (const auto& field : fields) {
        torch::Tensor t;
        root.read("adamw." + g.name + "." + field.first, t);
        if (t.sizes() != field.second->sizes())
          throw bad("adamw." + g.name + "." + field.first, "optimizer state of shape " +
                                                              c10::str(t.sizes()) + ", expected " +
                                                              c10::str(field.second->sizes()));
        field.second->copy_(t);
      }
    }
    torch::Tensor cpu_state;
    root.read("rng_torch_cpu", cpu_state);
    {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(cpu_state.to(torch::kCPU));
    }
    if (device_.is_cuda()) {
      torch::Tensor dev_state;
      if (root.try_read("rng_torch_device", dev_state)) {
        auto gen = at::globalContext().defaultGenerator(device_);
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(dev_state.to(torch::kCPU));
      }
    }
  } catch (const c10::Error& e) {
    throw bad("", std::string("checkpoint archive does not fit this trainer: ") +
                      e.what_without_backtrace());
  }
  pos_ = pos;
  perm_ = std::move(perm);
  rng_ = rng;
  tokens_total_ = tokens_total;
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  RawCheckpoint raw = read_raw(path);
  CheckpointInfo info;
  try {
    info.model = config_from_json(raw.meta.at("model"));
    info.position.step = raw.meta.at("step").get<int64_t>();
    info.position.epoch = raw.meta.at("epoch").get<int64_t>();
    info.position.cursor = raw.meta.at("cursor").get<int64_t>();
    info.tokens_total = raw.meta.at("tokens_total").get<int64_t>();
    info.meta = raw.meta.at("meta").get<std::map<std::string, std::string>>();
    info.world_size = raw.meta.value("world_size", 1);
    info.parallelism = raw.meta.value("parallelism", std::string("none"));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, 0, 0, "", std::string("bad checkpoint metadata: ") + e.what());
  }
  return info;
}

void load_checkpoint_weights(const std::string& path, model::CausalLM& model) {
  RawCheckpoint raw = read_raw(path);
  checked_config(raw, path, model->config());
  torch::serialize::InputArchive root, model_ar;
  load_archive(root, raw, path, model->device());
  try {
    root.read("model", model_ar);
    model->load(model_ar);
  } catch (const c10::Error& e) {
    throw InputError(path, 0, 0, "model", std::string("weights unreadable: ") + e.what_without_backtrace());
  }
}

model::ModelConfig bench_model_config(const std::string& size) {
  if (size == "mini")  // read from the shipped recipe, so the two cannot drift apart
    return model::ModelConfig(recipe::load_recipe(resource_path("recipes/s1-mini.toml")).base);
  model::ModelConfig c;  // "small" (the other fields at their defaults, settings.h)
  c.vocab = 272;
  c.hidden = 128;
  c.layers = 4;
  c.heads = 8;
  c.kv_heads = 2;
  c.head_dim = 16;
  c.ffn = 384;
  if (size == "small") return c;
  if (size == "large") {
    c.hidden = 320;
    c.layers = 8;
    c.heads = 10;
    c.kv_heads = 2;
    c.head_dim = 32;
    c.ffn = 960;
    return c;
  }
  if (size == "50m") {
    c.vocab = 8192;
    c.hidden = 512;
    c.layers = 14;
    c.heads = 8;
    c.kv_heads = 2;
    c.head_dim = 64;
    c.ffn = 1536;
    return c;
  }
  throw std::invalid_argument("bench model size must be mini, small, large or 50m, not '" + size +
                              "'");
}

Throughput measure_train_throughput(const model::ModelConfig& mc, int64_t batch, int64_t seq,
                                    int warmup_steps, int timed_steps, const std::string& device,
                                    uint64_t seed, const std::string& precision) {
  model::CausalLM m(mc);
  model::init_weights(m, seed);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
  TrainData data;
  data.tokens = torch::randint(0, mc.vocab, {batch, seq}, gen, torch::kLong);
  data.loss_mask = torch::ones({batch, seq}, torch::kLong);
  TrainConfig cfg;
  cfg.global_batch = cfg.micro_batch = batch;
  cfg.max_steps = warmup_steps + timed_steps;
  cfg.warmup_steps = 0;
  cfg.lr = 1e-3;
  cfg.shuffle = false;
  cfg.device = device;
  cfg.precision = precision;
  Trainer t(m, cfg, data);
  for (int i = 0; i < warmup_steps; ++i) t.step();
  Throughput r;
  r.tokens_per_step = batch * seq;
  std::vector<double> step_seconds;
  const double cpu0 = process_cpu_seconds();
  for (int i = 0; i < timed_steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    r.final_loss = t.step().loss;
    step_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    r.seconds += step_seconds.back();
  }
  r.cpu_seconds = process_cpu_seconds() - cpu0;
  r.steps = timed_steps;
  if (timed_steps > 0) {
    // The median step: robust to other processes stealing the CPU for part of the run.
    std::sort(step_seconds.begin(), step_seconds.end());
    const size_t n = step_seconds.size();
    r.seconds_per_step = n % 2 ? step_seconds[n / 2] : 0.5 * (step_seconds[n / 2 - 1] + step_seconds[n / 2]);
    r.tokens_per_s = r.tokens_per_step / r.seconds_per_step;
  }
  return r;
}

CudaAutocast::CudaAutocast(bool on) : on_(on) {
  if (!on_) return;
  prev_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
  prev_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::increment_nesting();
}

CudaAutocast::~CudaAutocast() {
  if (!on_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(at::kCUDA, prev_enabled_);
  at::autocast::set_autocast_dtype(at::kCUDA, prev_dtype_);
}

}  // namespace audit::train
