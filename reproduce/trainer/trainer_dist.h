// The trainer's state on several ranks (trainer_dist.cpp says how it works): DDP's buckets and
// FSDP's units. Private to reproduce/trainer: trainer.cpp and trainer_dist.cpp include it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "reproduce/trainer/trainer.h"

namespace audit::train {

// ---------------------------------------------------------------------------------------------
// DDP

struct Trainer::Ddp {
  struct Bucket {
    size_t group = 0;
    int64_t offset = 0, numel = 0;  // range of the group's flat gradient
    int expected = 0, pending = 0;  // parameters whose gradient is not in yet this backward
    dist::Work work;
  };
  dist::World* world = nullptr;
  std::vector<torch::Tensor> flat_grads;  // per group; the parameters' .grad are views of these
  std::vector<Bucket> buckets;            // in launch order
  std::vector<size_t> bucket_of;          // parameter index (params_) -> bucket
  // The accumulators carry the hooks; autograd keeps only a weak reference to them.
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;
  bool armed = false;  // hooks count only during the last micro-batch's backward
  size_t next = 0;     // the next bucket to start
  std::mutex mu;       // hooks run on autograd's thread

  void start_ready() {
    while (next < buckets.size() && buckets[next].pending == 0) {
      auto& b = buckets[next++];
      auto view = flat_grads[b.group].narrow(0, b.offset, b.numel);
      b.work = world->all_reduce_async(view);
    }
  }
  void on_ready(size_t param) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed) return;
    auto& b = buckets[bucket_of[param]];
    if (b.pending > 0 && --b.pending == 0) start_ready();
  }
  // Before a step: gradients to zero, every bucket waiting for all its parameters.
  void prepare() {
    for (auto& g : flat_grads)
      if (g.defined()) g.zero_();
    for (auto& b : buckets) b.pending = b.expected;
    next = 0;
    armed = false;
  }
  void arm() {
    std::lock_guard<std::mutex> lock(mu);
    armed = true;
  }
  // After backward: the buckets not started yet (parameters without a gradient, or a rank with
  // no samples in this step) start now, in order; then every one is waited for.
  void finish() {
    {
      std::lock_guard<std::mutex> lock(mu);
      for (auto& b : buckets) b.pending = 0;
      start_ready();
      armed = false;
    }
    for (auto& b : buckets) b.work.wait();
  }
};

// ---------------------------------------------------------------------------------------------
// FSDP

namespace detail {

// Frees a tensor's bytes but keeps its storage object, so views of it (the parameters, and what
// autograd saved of them) follow when the bytes come back (torch FSDP's _free_storage).
inline void free_storage(const torch::Tensor& t) {
  auto* impl = t.storage().unsafeGetStorageImpl();
  if (impl->nbytes() == 0) return;
  impl->set_data_ptr_noswap(c10::DataPtr(nullptr, t.device()));
  impl->set_nbytes(0);
}

inline void alloc_storage(const torch::Tensor& t, size_t nbytes) {
  auto* impl = t.storage().unsafeGetStorageImpl();
  if (impl->nbytes() == nbytes) return;
  impl->set_data_ptr_noswap(impl->allocator()->allocate(nbytes));
  impl->set_nbytes(nbytes);
}

}  // namespace detail

struct Trainer::Fsdp {
  struct Flat {
    std::string group;  // "decay" | "no_decay"
    double weight_decay = 0;
    std::vector<torch::Tensor> params;  // the model's parameters: views of full
    std::vector<int64_t> offsets;
    int64_t numel = 0, padded = 0, shard_len = 0;
    torch::Tensor full;  // [padded]; its storage is freed while the unit is not gathered
    torch::Tensor shard, grad_shard, exp_avg, exp_avg_sq, step;  // [shard_len]; step: scalar
    size_t full_bytes() const { return static_cast<size_t>(padded) * full.element_size(); }
  };
  struct Unit {
    std::string name;  // "root" | "layer.<i>"
    std::vector<Flat> flats;
    bool gathered = false;
    std::vector<dist::Work> inflight;  // a gather started ahead (prefetch)
  };

  dist::World* world = nullptr;
  std::vector<Unit> units;  // 0: root; 1 + i: decoder layer i
  bool consolidated = false;

  int64_t rank() const { return world->rank(); }

  void start_gather(size_t u) {
    auto& unit = units[u];
    if (unit.gathered || !unit.inflight.empty()) return;
    for (auto& f : unit.flats) {
      detail::alloc_storage(f.full, f.full_bytes());
      unit.inflight.push_back(world->all_gather_async(f.full, f.shard));
    }
  }
  void gather(size_t u) {
    auto& unit = units[u];
    if (unit.gathered) return;
    start_gather(u);
    for (auto& w : unit.inflight) w.wait();
    unit.inflight.clear();
    unit.gathered = true;
  }
  void release(size_t u) {
    auto& unit = units[u];
    if (consolidated) return;
    for (auto& w : unit.inflight) w.wait();
    unit.inflight.clear();
    for (auto& f : unit.flats) detail::free_storage(f.full);
    unit.gathered = false;
  }
  // The unit's gradients (its parameters' .grad, which autograd filled) summed over the ranks into
  // this rank's gradient shard; the .grad are dropped.
  void reduce_grads(size_t u) {
    torch::NoGradGuard no_grad;
    for (auto& f : units[u].flats) {
      auto flat = torch::zeros({f.padded}, f.full.options());
      for (size_t i = 0; i < f.params.size(); ++i) {
        auto& p = f.params[i];
        if (p.grad().defined())
          flat.narrow(0, f.offsets[i], p.numel()).copy_(p.grad().reshape(-1));
        p.mutable_grad().reset();
      }
      auto out = torch::empty({f.shard_len}, f.full.options());
      world->reduce_scatter(out, flat);
      f.grad_shard.add_(out);
    }
  }

  model::CausalLMImpl::LayerHooks hooks() {
    model::CausalLMImpl::LayerHooks h;
    h.before = [this](int64_t layer, const torch::Tensor& input) {
      const size_t u = static_cast<size_t>(layer) + 1;
      gather(u);
      if (u + 1 < units.size()) start_gather(u + 1);  // prefetch the next layer
      if (input.requires_grad())  // after this layer's backward: its gradients, then free it
        input.register_hook([this, u](const torch::Tensor&) {
          reduce_grads(u);
          release(u);
        });
    };
    h.after = [this](int64_t layer, const torch::Tensor& output) {
      const size_t u = static_cast<size_t>(layer) + 1;
      release(u);
      if (output.requires_grad())  // before this layer's backward: gather it again
        output.register_hook([this, u](const torch::Tensor&) {
          gather(u);
          if (u > 1) start_gather(u - 1);  // prefetch the layer before it
        });
    };
    return h;
  }
};

}  // namespace audit::train
