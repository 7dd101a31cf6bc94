// One rank of a small training run, for tests/torch/distributed_test.cpp: it joins the group
// that torchrun's variables describe (RANK, WORLD_SIZE, MASTER_PORT...; none: one process), trains
// a tiny qwen2 on seeded random data with the given parallelism, and writes what the test compares
// against a one-process run: every step's loss, gradient norm, tokens and collectives
// (OUT/rank<R>.json) and the consolidated parameters (OUT/params-rank<R>.bin, fp32 in
// named_parameters order). It counts CPU tensor memory (dist::CpuMemory) to measure what a rank
// holds for parameters, gradients and AdamW states between steps.
//
//   dist_train_probe --out DIR [--parallelism ddp|fsdp_full_shard] [--steps S] [--micro M]
//                    [--batch B] [--recompute] [--bucket-bytes N] [--checkpoint PATH
//                    --checkpoint-every K] [--stop-after K] [--die-at-step K]
// --stop-after K ends after step K (a checkpoint at K lets the next run resume);
// --die-at-step K: this rank SIGKILLs itself before step K (the test of a rank dying mid-run).
// Exit 0; 2 for a bad checkpoint (audit::InputError), 1 for any other failure (message on stderr).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "common/errors.h"
#include "reproduce/distributed/distributed.h"
#include "reproduce/trainer/trainer.h"

namespace dist = audit::dist;
namespace train = audit::train;
namespace model = audit::model;

int main(int argc, char** argv) {
  dist::CpuMemory::install();
  std::string out, parallelism = "none", checkpoint;
  int64_t steps = 6, micro = 2, batch = 8, bucket = 25ll << 20, every = 0, stop_after = 0, die_at = 0;
  bool recompute = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value after %s\n", a.c_str());
        std::exit(1);
      }
      return argv[++i];
    };
    if (a == "--out") out = next();
    else if (a == "--parallelism") parallelism = next();
    else if (a == "--steps") steps = std::stoll(next());
    else if (a == "--micro") micro = std::stoll(next());
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--bucket-bytes") bucket = std::stoll(next());
    else if (a == "--checkpoint") checkpoint = next();
    else if (a == "--checkpoint-every") every = std::stoll(next());
    else if (a == "--stop-after") stop_after = std::stoll(next());
    else if (a == "--die-at-step") die_at = std::stoll(next());
    else if (a == "--recompute") recompute = true;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 1;
    }
  }
  try {
    torch::set_num_threads(1);
    auto spec = dist::spec_from_env();
    std::unique_ptr<dist::World> world;
    if (spec && spec->world_size > 1) world = std::make_unique<dist::World>(*spec, "cpu");
    const int rank = world ? world->rank() : 0;

    // The data: 24 rows of 32 tokens; each row's first quarter is prompt (no loss), and rows end
    // at different lengths (padding without loss), as SFT batches do.
    torch::manual_seed(7);
    const int64_t N = 24, T = 32, V = 96;
    train::TrainData data;
    data.tokens = torch::randint(0, V, {N, T}, torch::kLong);
    data.loss_mask = torch::zeros({N, T}, torch::kUInt8);
    for (int64_t r = 0; r < N; ++r) data.loss_mask[r].narrow(0, 8, 12 + (r * 5) % 12).fill_(1);
    const int64_t live_data = dist::CpuMemory::live_bytes();

    model::ModelConfig mc;
    mc.vocab = V;
    mc.hidden = 64;
    mc.layers = 3;
    mc.heads = 4;
    mc.kv_heads = 2;
    mc.head_dim = 16;
    mc.ffn = 128;
    mc.max_position = 64;
    mc.validate();
    model::CausalLM m(mc);
    model::init_weights(m, 11 + static_cast<uint64_t>(rank));  // ranks differ: rank 0's wins

    train::TrainConfig cfg;
    cfg.global_batch = batch;
    cfg.micro_batch = micro;
    cfg.max_steps = steps;
    cfg.lr = 3e-3;
    cfg.warmup_steps = 1;
    cfg.recompute = recompute;
    cfg.seed = 5;
    cfg.parallelism = parallelism;
    cfg.ddp_bucket_bytes = bucket;
    cfg.checkpoint_path = checkpoint;
    cfg.checkpoint_every = every;
    train::Trainer t(m, cfg, data, world.get());
    const bool resumed = t.resume_if_present();

    nlohmann::json j = {{"rank", rank},
                        {"world", world ? world->size() : 1},
                        {"parallelism", parallelism},
                        {"resumed", resumed},
                        {"start_step", t.position().step},
                        {"loss", nlohmann::json::array()},
                        {"grad_norm", nlohmann::json::array()},
                        {"tokens", nlohmann::json::array()},
                        {"local_tokens", nlohmann::json::array()},
                        {"comm", nlohmann::json::array()},
                        {"buckets", nlohmann::json::array()},
                        {"buckets_in_backward", nlohmann::json::array()}};
    int64_t state_bytes = -1, peak_bytes = -1;
    while (!t.done()) {
      if (die_at > 0 && t.position().step + 1 == die_at) ::raise(SIGKILL);
      dist::CpuMemory::reset_peak();
      const auto s = t.step();
      if (!checkpoint.empty() && every > 0 && s.step % every == 0) t.save_checkpoint(checkpoint);
      if (state_bytes < 0) {  // after the first step: the state a rank keeps between steps
        state_bytes = dist::CpuMemory::live_bytes() - live_data;
        peak_bytes = dist::CpuMemory::peak_bytes() - live_data;
      }
      j["loss"].push_back(s.loss);
      j["grad_norm"].push_back(s.grad_norm);
      j["tokens"].push_back(s.tokens);
      j["local_tokens"].push_back(s.local_tokens);
      j["buckets"].push_back(s.buckets);
      j["buckets_in_backward"].push_back(s.buckets_in_backward);
      j["comm"].push_back(dist::to_json(s.comm));
      if (stop_after > 0 && s.step >= stop_after) break;
    }
    t.consolidate();
    j["state_bytes"] = state_bytes;
    j["peak_bytes"] = peak_bytes;
    j["parameters"] = mc.parameter_count();
    {
      std::ofstream f(out + "/params-rank" + std::to_string(rank) + ".bin", std::ios::binary);
      torch::NoGradGuard no_grad;
      for (const auto& p : t.model()->named_parameters()) {
        auto c = p.value().detach().to(torch::kFloat).contiguous();
        f.write(static_cast<const char*>(c.data_ptr()), c.numel() * sizeof(float));
      }
    }
    std::ofstream(out + "/rank" + std::to_string(rank) + ".json") << j.dump() << "\n";
    if (world) world->barrier();
    return 0;
  } catch (const audit::InputError& e) {
    std::fprintf(stderr, "dist_train_probe: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_train_probe: %s\n", e.what());
    return 1;
  }
}
