// The trainer on several ranks (trainer.h, TrainConfig::parallelism): DDP's bucketed gradient
// all-reduce started from autograd's hooks, and FSDP's full sharding per decoder layer.
//
// DDP. Each group's gradients live in one flat buffer that the parameters' .grad are views of
// (autograd adds into them in place). Buckets are ranges of those buffers of about
// ddp_bucket_bytes, cut in reverse parameter order (the order backward produces gradients). A
// post-hook on every parameter's gradient accumulator counts down its bucket during the last
// micro-batch's backward; a bucket whose gradients are all in is all-reduced asynchronously while
// backward goes on. Buckets start in one fixed order on every rank (Gloo and NCCL match
// collectives by order); after backward the rest start and all are waited for. The loss is
// normalized by the whole global batch's target count on every rank, so the sum over ranks is the
// one-process gradient; no averaging.
//
// FSDP (full shard). Units: the root (embeddings, final norm, lm_head: gathered for the whole step)
// and one per decoder layer. Each unit's decay and no-decay parameters form one flat parameter
// each, padded to a multiple of the world size; a rank keeps its 1/N shard, its gradient and its
// AdamW states. The unsharded flat is a tensor whose storage is freed (its bytes released, the
// storage object kept) when the unit is not in use and allocated again for the all-gather, as
// torch's FSDP does: the parameters stay views of it, and so do the tensors autograd saved from
// them, which see the gathered values again in backward. The model's layer hooks gather a layer
// before its forward (starting the next layer's gather, the prefetch) and free it after; hooks on
// the layer's output and input gradients gather it before its backward (prefetching the layer
// before it) and, after its backward, reduce-scatter its gradients into the shard and free it.
// With recompute on, the recomputed layer runs inside the same gathered window. Clipping uses the
// global norm (an all-reduce of the shards' squared sums); AdamW runs on the shards.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>

#include <torch/csrc/autograd/utils/lambda_post_hook.h>

#include "common/errors.h"
#include "reproduce/trainer/trainer.h"
#include "reproduce/trainer/trainer_dist.h"

namespace audit::train {

// ---------------------------------------------------------------------------------------------

Trainer::~Trainer() = default;

int Trainer::world_size() const { return world_ == nullptr ? 1 : world_->size(); }

std::vector<int64_t> Trainer::local_slice(const std::vector<int64_t>& samples) const {
  const int64_t W = world_size(), r = world_ == nullptr ? 0 : world_->rank();
  const int64_t n = static_cast<int64_t>(samples.size());
  const int64_t base = n / W, extra = n % W;
  const int64_t begin = r * base + std::min(r, extra);
  const int64_t len = base + (r < extra ? 1 : 0);
  return std::vector<int64_t>(samples.begin() + begin, samples.begin() + begin + len);
}

void Trainer::setup_distributed() {
  if (world_ == nullptr || world_->size() <= 1) return;
  const auto& par = cfg_.parallelism;
  if (par != "ddp" && par != "fsdp_full_shard")
    throw std::invalid_argument(
        "trainer: parallelism '" + par + "' on " + std::to_string(world_->size()) +
        " ranks: several ranks train with \"ddp\" or \"fsdp_full_shard\"");
  // "cuda" (the current device) matches the world's "cuda:N"; a type or index that differs not.
  const torch::Device world_device(world_->device());
  if (world_device.type() != device_.type() ||
      (world_device.has_index() && device_.has_index() && world_device.index() != device_.index()))
    throw std::invalid_argument("trainer: the world's device (" + world_->device() +
                                ") is not the trainer's (" + device_.str() + ")");
  torch::NoGradGuard no_grad;
  // Every replica starts from rank 0's parameters.
  for (auto& g : groups_)
    if (!g.params.empty()) world_->broadcast(g.flat, 0);

  if (par == "ddp") {
    ddp_ = std::make_unique<Ddp>();
    auto& d = *ddp_;
    d.world = world_;
    d.bucket_of.assign(params_.size(), 0);
    std::map<const void*, size_t> index_of;  // TensorImpl -> params_ index
    for (size_t i = 0; i < params_.size(); ++i) index_of[params_[i].unsafeGetTensorImpl()] = i;
    struct Pending {
      size_t group;
      int64_t lo, hi;
      size_t first_param;  // lowest params_ index in it: the last one backward reaches
      std::vector<size_t> params;
    };
    std::vector<Pending> cut;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      auto& g = groups_[gi];
      d.flat_grads.push_back(g.params.empty() ? torch::Tensor() : torch::zeros_like(g.flat));
      if (g.params.empty()) continue;
      std::vector<int64_t> offsets;
      int64_t off = 0;
      for (auto& p : g.params) {
        offsets.push_back(off);
        p.mutable_grad() = d.flat_grads[gi].narrow(0, off, p.numel()).view(p.sizes());
        off += p.numel();
      }
      Pending cur{gi, 0, 0, params_.size(), {}};
      const int64_t elem = g.flat.element_size();
      for (size_t k = g.params.size(); k-- > 0;) {
        const size_t pi = index_of.at(g.params[k].unsafeGetTensorImpl());
        if (cur.params.empty()) cur.hi = offsets[k] + g.params[k].numel();
        cur.lo = offsets[k];
        cur.first_param = std::min(cur.first_param, pi);
        cur.params.push_back(pi);
        if ((cur.hi - cur.lo) * elem >= cfg_.ddp_bucket_bytes) {
          cut.push_back(cur);
          cur = Pending{gi, 0, 0, params_.size(), {}};
        }
      }
      if (!cur.params.empty()) cut.push_back(cur);
    }
    // Launch order: the bucket whose last gradient backward produces first goes first.
    std::stable_sort(cut.begin(), cut.end(),
                     [](const Pending& a, const Pending& b) { return a.first_param > b.first_param; });
    for (const auto& c : cut) {
      Ddp::Bucket b;
      b.group = c.group;
      b.offset = c.lo;
      b.numel = c.hi - c.lo;
      b.expected = static_cast<int>(c.params.size());
      for (size_t pi : c.params) d.bucket_of[pi] = d.buckets.size();
      d.buckets.push_back(std::move(b));
    }
    for (size_t i = 0; i < params_.size(); ++i) {
      auto acc = torch::autograd::impl::grad_accumulator(params_[i]);
      Ddp* dp = ddp_.get();
      acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
          [dp, i](const torch::autograd::variable_list& outputs,
                  const torch::autograd::variable_list&) {
            dp->on_ready(i);
            return outputs;
          }));
      d.accumulators.push_back(std::move(acc));
    }
    return;
  }

  // fsdp_full_shard: units from the parameters' names, flats per unit and group.
  fsdp_ = std::make_unique<Fsdp>();
  auto& f = *fsdp_;
  f.world = world_;
  const int64_t layers = model_->config().layers;
  f.units.resize(static_cast<size_t>(layers) + 1);
  f.units[0].name = "root";
  for (int64_t i = 0; i < layers; ++i) f.units[i + 1].name = "layer." + std::to_string(i);
  const std::string prefix = "model.layers.";
  for (auto& item : model_->named_parameters()) {
    const std::string& name = item.key();
    size_t u = 0;
    if (name.rfind(prefix, 0) == 0) u = 1 + std::stoul(name.substr(prefix.size()));
    auto& unit = f.units.at(u);
    const bool decay = item.value().dim() >= 2;
    const std::string group = decay ? "decay" : "no_decay";
    auto it = std::find_if(unit.flats.begin(), unit.flats.end(),
                           [&](const Fsdp::Flat& x) { return x.group == group; });
    if (it == unit.flats.end()) {
      unit.flats.emplace_back();
      it = std::prev(unit.flats.end());
      it->group = group;
      it->weight_decay = decay ? cfg_.weight_decay : 0.0;
    }
    it->offsets.push_back(it->numel);
    it->numel += item.value().numel();
    it->params.push_back(item.value());
  }
  const int64_t W = world_->size();
  for (auto& unit : f.units)
    for (auto& fl : unit.flats) {
      fl.shard_len = (fl.numel + W - 1) / W;
      fl.padded = fl.shard_len * W;
      auto opts = fl.params.front().options();
      fl.full = torch::zeros({fl.padded}, opts);
      for (size_t i = 0; i < fl.params.size(); ++i) {
        auto& p = fl.params[i];
        auto view = fl.full.narrow(0, fl.offsets[i], p.numel());
        view.copy_(p.detach().reshape(-1));
        p.set_data(view.view(p.sizes()));
      }
      fl.shard = fl.full.narrow(0, world_->rank() * fl.shard_len, fl.shard_len).clone();
      fl.grad_shard = torch::zeros_like(fl.shard);
      fl.exp_avg = torch::zeros_like(fl.shard);
      fl.exp_avg_sq = torch::zeros_like(fl.shard);
      fl.step = torch::zeros({}, opts);
    }
  groups_.clear();  // the whole-model flats: every parameter now lives in its unit's flat
  unit_release_all();
  model_->set_layer_hooks(f.hooks());
}

void Trainer::unit_release_all() {
  if (!fsdp_) return;
  fsdp_->consolidated = false;
  for (size_t u = 0; u < fsdp_->units.size(); ++u) fsdp_->release(u);
}

void Trainer::consolidate() {
  if (!fsdp_ || fsdp_->consolidated) return;
  for (size_t u = 0; u < fsdp_->units.size(); ++u) fsdp_->gather(u);
  fsdp_->consolidated = true;
  model_->set_layer_hooks({});
}

void Trainer::ensure_sharded() {
  if (!fsdp_ || !fsdp_->consolidated) return;
  unit_release_all();
  model_->set_layer_hooks(fsdp_->hooks());
}

// One optimizer step's gradients on several ranks: this rank's slice of `samples`, normalized by
// the whole batch's target count; with FSDP every rank runs as many micro-batches as the rank
// with the most (the extra ones on a repeated sample with weight 0), so that every rank makes the
// same collectives in the same order.
double Trainer::accumulate_distributed(const std::vector<int64_t>& samples, int64_t* positions_run) {
  const auto local = local_slice(samples);
  const double normalizer = static_cast<double>(target_count(samples));
  const int64_t micro = cfg_.micro_batch_or_global();
  const int64_t most = (static_cast<int64_t>(samples.size()) + world_size() - 1) / world_size();
  const int64_t rounds = fsdp_ ? (most + micro - 1) / micro
                               : (static_cast<int64_t>(local.size()) + micro - 1) / micro;
  if (ddp_) ddp_->prepare();
  if (fsdp_) {
    for (auto& p : params_) p.mutable_grad().reset();
    for (auto& unit : fsdp_->units)
      for (auto& fl : unit.flats) fl.grad_shard.zero_();
    fsdp_->gather(0);
  }
  double loss = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t at = r * micro;
    std::vector<int64_t> part;
    double weight = 1.0;
    if (at < static_cast<int64_t>(local.size())) {
      const int64_t len = std::min<int64_t>(micro, static_cast<int64_t>(local.size()) - at);
      part.assign(local.begin() + at, local.begin() + at + len);
    } else {
      part = {samples.front()};  // keeps the collectives in step; adds nothing
      weight = 0.0;
    }
    if (ddp_ && r == rounds - 1) ddp_->arm();
    loss += run_micro_batch(part, normalizer, weight, weight > 0 ? positions_run : nullptr);
  }
  if (ddp_) ddp_->finish();
  if (fsdp_) {
    fsdp_->reduce_grads(0);
    fsdp_->release(0);
  }
  return loss;
}

double Trainer::fsdp_clip_and_update(double lr) {
  torch::NoGradGuard no_grad;
  auto& f = *fsdp_;
  auto sum_sq = torch::zeros({1}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  for (auto& unit : f.units)
    for (auto& fl : unit.flats) sum_sq += fl.grad_shard.to(torch::kDouble).pow(2).sum();
  sum_sq = sum_sq.contiguous();
  world_->all_reduce(sum_sq);
  const double total_norm = std::sqrt(sum_sq.cpu().item<double>());
  if (cfg_.grad_clip > 0) {
    const double coef = cfg_.grad_clip / (total_norm + 1e-6);
    if (coef < 1.0)
      for (auto& unit : f.units)
        for (auto& fl : unit.flats) fl.grad_shard.mul_(coef);
  }
  for (auto& unit : f.units)
    for (auto& fl : unit.flats) {
      fl.step.add_(1);
      at::_fused_adamw_({fl.shard}, {fl.grad_shard}, {fl.exp_avg}, {fl.exp_avg_sq}, {}, {fl.step},
                        lr, cfg_.beta1, cfg_.beta2, fl.weight_decay, cfg_.adam_eps,
                        /*amsgrad=*/false, /*maximize=*/false);
    }
  return total_norm;
}

// The FSDP shards and their AdamW states in an archive (this rank's part of a checkpoint).
void Trainer::write_shards(torch::serialize::OutputArchive& ar) const {
  for (const auto& unit : fsdp_->units)
    for (const auto& fl : unit.flats) {
      const std::string key = unit.name + "." + fl.group;
      ar.write(key + ".shard", fl.shard);
      ar.write(key + ".exp_avg", fl.exp_avg);
      ar.write(key + ".exp_avg_sq", fl.exp_avg_sq);
      ar.write(key + ".step", fl.step);
    }
}

void Trainer::read_shards(torch::serialize::InputArchive& ar, const std::string& path) {
  torch::NoGradGuard no_grad;
  for (auto& unit : fsdp_->units)
    for (auto& fl : unit.flats) {
      const std::string key = unit.name + "." + fl.group;
      const std::pair<const char*, torch::Tensor*> fields[] = {{"shard", &fl.shard},
                                                               {"exp_avg", &fl.exp_avg},
                                                               {"exp_avg_sq", &fl.exp_avg_sq},
                                                               {"step", &fl.step}};
      for (const auto& field : fields) {
        torch::Tensor t;
        ar.read(key + "." + field.first, t);
        if (t.sizes() != field.second->sizes())
          throw InputError(path, 0, 0, key + "." + field.first,
                           "shard of shape " + c10::str(t.sizes()) + ", this rank expects " +
                               c10::str(field.second->sizes()));
        field.second->copy_(t);
      }
    }
  // Whatever was gathered is stale now.
  unit_release_all();
  model_->set_layer_hooks(fsdp_->hooks());
}

}  // namespace audit::train
