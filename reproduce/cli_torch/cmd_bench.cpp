// `audit bench` and `audit bench train`: SFT tokens/s of full train steps of the C++ trainer
// against transformers' Qwen2ForCausalLM in PyTorch eager (tests/golden/bench_train.py, same
// torch package, same thread count) with attn_implementation "eager" and "sdpa", on the same
// shapes, batch and sequence, in one run, with the ratios: the s1-mini recipe's model, a small one
// (0.83M parameters), one about 11x larger than that, and a ~50M-parameter one.
// `audit bench forward`: one forward pass (all logits) of our model against transformers'
// Qwen2ForCausalLM with eager and with sdpa attention (tests/golden/bench_forward.py), random
// weights of Qwen2.5-0.5B's shapes by default, same thread count, in one run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "reproduce/cli/cli.h"
#include "reproduce/trainer/trainer.h"  // measure_train_throughput, bench_model_config
#include "common/python_peer.h"
#include "common/resources.h"

namespace audit::cli {

namespace {

struct BenchTrainOptions {
  std::string models = "both";  // mini | small | large | 50m | both (small, large) | all
  int threads = 0;              // 0: torch's default for this machine
  int warmup = 2;
  int steps = 5;
  int repeats = 1;  // alternate C++ and Python this many times; the median is reported
  int64_t batch = 16;
  int64_t seq = 256;
  std::string python;
  std::string json_out;
};


// Runs bench_train.py for one model and returns its JSON line.
nlohmann::json run_python(const BenchTrainOptions& o, const model::ModelConfig& c, int threads,
                          const std::string& device) {
  std::ostringstream cmd;
  cmd << shell_quote(o.python) << ' '
      << shell_quote(resource_path("peers/bench_train.py"))
      << " --vocab " << c.vocab << " --hidden " << c.hidden << " --layers " << c.layers
      << " --heads " << c.heads << " --kv-heads " << c.kv_heads << " --head-dim " << c.head_dim
      << " --ffn " << c.ffn << " --rope-theta " << c.rope_theta << " --batch " << o.batch
      << " --seq " << o.seq << " --warmup " << o.warmup << " --steps " << o.steps
      << " --threads " << threads << " --device " << device << " --attn eager,sdpa"
      << (torch::Device(device).is_cuda() ? " --bf16" : "");
  return run_python_json(cmd.str(), "transformers train benchmark");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int bench_train(const BenchTrainOptions& o, const GlobalOptions& g) {
  const int threads = o.threads > 0 ? o.threads : torch::get_num_threads();
  torch::set_num_threads(threads);
  std::vector<std::string> sizes;
  if (o.models == "all" || o.models == "mini") sizes.push_back("mini");
  if (o.models == "all" || o.models == "both" || o.models == "small") sizes.push_back("small");
  if (o.models == "all" || o.models == "both" || o.models == "large") sizes.push_back("large");
  if (o.models == "all" || o.models == "50m") sizes.push_back("50m");
  // The trainer's precision: bf16 autocast on CUDA (the Python side autocasts too), fp32 on CPU.
  const std::string precision = torch::Device(g.device).is_cuda() ? "bf16" : "fp32";
  nlohmann::json results = nlohmann::json::array();
  std::printf("audit bench train: SFT train steps (forward, loss, backward, clip, AdamW), batch %lld\n"
              "x seq %lld, %d warmup + %d timed steps, %d thread(s), device %s (%s), %d\n"
              "alternating repeat(s) (median). transformers Qwen2ForCausalLM in PyTorch eager: %s\n\n",
              static_cast<long long>(o.batch), static_cast<long long>(o.seq), o.warmup, o.steps,
              threads, g.device.c_str(), precision.c_str(), o.repeats, o.python.c_str());
  std::printf("%-6s %9s %11s %11s %11s %11s %9s %9s %10s\n", "model", "params", "tokens/step",
              "C++ tok/s", "HF eager", "HF sdpa", "vs eager", "vs sdpa", "(CPU sdpa)");
  for (const auto& size : sizes) {
    const auto c = train::bench_model_config(size);
    // Wall: tokens / median step. CPU: tokens per second of process CPU time over the timed
    // steps, less sensitive to other processes on a shared machine (equal to wall at 1 thread
    // on an idle one).
    std::vector<double> cpp, eager, sdpa, cpp_cpu, sdpa_cpu;
    const double tokens = static_cast<double>(o.batch * o.seq * o.steps);
    int64_t hf_params = 0;
    for (int r = 0; r < o.repeats; ++r) {
      auto t = train::measure_train_throughput(c, o.batch, o.seq, o.warmup, o.steps, g.device, 0,
                                               precision);
      cpp.push_back(t.tokens_per_s);
      cpp_cpu.push_back(tokens / t.cpu_seconds);
      auto p = run_python(o, c, threads, g.device);
      eager.push_back(p.at("eager").at("tokens_per_s").get<double>());
      sdpa.push_back(p.at("sdpa").at("tokens_per_s").get<double>());
      sdpa_cpu.push_back(tokens / p.at("sdpa").at("cpu_seconds").get<double>());
      hf_params = p.at("params").get<int64_t>();
    }
    if (hf_params != c.parameter_count())
      throw std::runtime_error("bench train: transformers built " + std::to_string(hf_params) +
                               " parameters for the " + size + " model, ours " +
                               std::to_string(c.parameter_count()));
    const double c_med = median(cpp), e_med = median(eager), s_med = median(sdpa);
    const double cpu_ratio = median(cpp_cpu) / median(sdpa_cpu);
    std::printf("%-6s %8.2fM %11lld %11.0f %11.0f %11.0f %8.2fx %8.2fx %9.2fx\n", size.c_str(),
                c.parameter_count() / 1e6, static_cast<long long>(o.batch * o.seq), c_med, e_med,
                s_med, c_med / e_med, c_med / s_med, cpu_ratio);
    std::fflush(stdout);
    results.push_back({{"model", size},
                       {"config", c.to_string()},
                       {"params", c.parameter_count()},
                       {"tokens_per_step", o.batch * o.seq},
                       {"threads", threads},
                       {"device", g.device},
                       {"precision", precision},
                       {"cpp_tokens_per_s", cpp},
                       {"hf_eager_tokens_per_s", eager},
                       {"hf_sdpa_tokens_per_s", sdpa},
                       {"cpp_tokens_per_cpu_s", cpp_cpu},
                       {"hf_sdpa_tokens_per_cpu_s", sdpa_cpu},
                       {"ratio_vs_eager", c_med / e_med},
                       {"ratio_vs_sdpa", c_med / s_med},
                       {"ratio_vs_sdpa_cpu_time", cpu_ratio}});
  }
  if (!o.json_out.empty()) {
    std::ofstream f(o.json_out);
    if (!f) throw std::runtime_error("cannot write " + o.json_out);
    f << results.dump(2) << "\n";
  }
  return 0;
}

struct BenchForwardOptions {
  std::string model = "0.5b";  // 0.5b: Qwen2.5-0.5B's shapes; tiny: a few-layer model for tests
  int threads = 0;
  int warmup = 1;
  int repeats = 5;
  int64_t batch = 1;
  int64_t seq = 512;
  std::string python;
  std::string json_out;
};

model::ModelConfig forward_bench_config(const std::string& name) {
  model::ModelConfig c;
  if (name == "0.5b") {  // Qwen2.5-0.5B: 494M parameters, tied embeddings
    c.vocab = 151936;
    c.hidden = 896;
    c.layers = 24;
    c.heads = 14;
    c.kv_heads = 2;
    c.head_dim = 64;
    c.ffn = 4864;
    c.tie_embeddings = true;
  } else {  // tiny
    c.vocab = 1000;
    c.hidden = 64;
    c.layers = 2;
    c.heads = 4;
    c.kv_heads = 2;
    c.head_dim = 16;
    c.ffn = 128;
    c.tie_embeddings = true;
  }
  c.rope_theta = 1e6;
  c.max_position = 32768;
  return c;
}

int bench_forward(const BenchForwardOptions& o) {
  const int threads = o.threads > 0 ? o.threads : torch::get_num_threads();
  torch::set_num_threads(threads);
  const auto c = forward_bench_config(o.model);
  std::printf("audit bench forward: one forward pass (all logits, fp32, CPU, no grad), %s shapes\n"
              "(%.0fM parameters), batch %lld x seq %lld, %d warmup + %d timed passes (median),\n"
              "%d thread(s). transformers: %s\n\n",
              o.model.c_str(), c.parameter_count() / 1e6, static_cast<long long>(o.batch),
              static_cast<long long>(o.seq), o.warmup, o.repeats, threads, o.python.c_str());
  std::vector<double> ours;
  {
    torch::NoGradGuard no_grad;
    model::CausalLM m(c);
    model::init_weights(m, 0);
    m->eval();
    auto ids = torch::randint(0, c.vocab, {o.batch, o.seq}, torch::kLong);
    for (int i = 0; i < o.warmup + o.repeats; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto logits = m->forward(ids);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (i >= o.warmup) ours.push_back(dt);
    }
  }  // freed before transformers builds its copy
  std::ostringstream cmd;
  cmd << shell_quote(o.python) << ' ' << shell_quote(resource_path("peers/bench_forward.py"))
      << " --vocab " << c.vocab << " --hidden " << c.hidden << " --layers " << c.layers
      << " --heads " << c.heads << " --kv-heads " << c.kv_heads << " --head-dim " << c.head_dim
      << " --ffn " << c.ffn << " --rope-theta " << c.rope_theta << " --batch " << o.batch
      << " --seq " << o.seq << " --warmup " << o.warmup << " --repeats " << o.repeats
      << " --threads " << threads << " --attn eager,sdpa";
  const auto py = run_python_json(cmd.str(), "transformers forward benchmark");
  const double t_ours = median(ours);
  const double t_eager = py.at("eager_median_s").get<double>();
  const double t_sdpa = py.at("sdpa_median_s").get<double>();
  std::printf("%-28s %10s %12s\n", "implementation", "seconds", "ours faster");
  std::printf("%-28s %10.3f %11.2fx\n", "audit (C++)", t_ours, 1.0);
  std::printf("%-28s %10.3f %11.2fx\n", "transformers eager", t_eager, t_eager / t_ours);
  std::printf("%-28s %10.3f %11.2fx\n", "transformers sdpa", t_sdpa, t_sdpa / t_ours);
  if (!o.json_out.empty()) {
    std::ofstream f(o.json_out);
    if (!f) throw std::runtime_error("cannot write " + o.json_out);
    f << nlohmann::json{{"model", o.model},
                        {"config", c.to_string()},
                        {"params", c.parameter_count()},
                        {"threads", threads},
                        {"batch", o.batch},
                        {"seq", o.seq},
                        {"ours_s", ours},
                        {"transformers", py},
                        {"ratio_vs_eager", t_eager / t_ours},
                        {"ratio_vs_sdpa", t_sdpa / t_ours}}
             .dump(2)
      << "\n";
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, GlobalOptions& g) {
  auto* bench = app.add_subcommand("bench", "Benchmarks against PyTorch eager (default: train)");
  bench->footer("Without a subcommand runs `audit bench train` with its defaults.\n"
                "Example: audit bench train --threads 2 --model small");
  auto o = std::make_shared<BenchTrainOptions>();
  o->python = default_python();
  auto* train = bench->add_subcommand(
      "train", "SFT tokens/s: the C++ trainer vs transformers' Qwen2ForCausalLM in PyTorch eager");
  train->description(
      "Times full SFT train steps (forward, loss, backward, clip, AdamW) of the C++ trainer and\n"
      "of tests/golden/bench_train.py (transformers' Qwen2ForCausalLM with attn_implementation\n"
      "eager and sdpa, torch.optim.AdamW fused as HF Trainer's default, same torch package, same\n"
      "thread count) on the same shapes: small (0.83M parameters) and large (~11x, 9.5M), the\n"
      "s1-mini recipe's base (mini, 0.22M) or a ~50M one (50m), then prints tokens/s of each and\n"
      "the ratios C++ / transformers. On CUDA both sides run bf16 autocast.");
  train->footer(
      "Examples:\n"
      "  audit bench train                       # small and large, torch's default threads\n"
      "  audit bench train --threads 2 --steps 10 --repeats 3 --json bench.json\n"
      "  audit bench train --model 50m --batch 4 --repeats 3\n"
      "  audit bench train --model small --device cuda");
  train->add_option("--model", o->models,
                    "Which model: mini, small, large, 50m, both (small and large) or all")
      ->check(CLI::IsMember({"mini", "small", "large", "50m", "both", "all"}))
      ->capture_default_str();
  train->add_option("--threads", o->threads, "Intra-op threads for both sides (0: torch default)")
      ->capture_default_str();
  train->add_option("--warmup", o->warmup, "Untimed steps first")->capture_default_str();
  train->add_option("--steps", o->steps, "Timed steps")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--repeats", o->repeats, "Alternate C++ and PyTorch runs N times; report medians")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train->add_option("--batch", o->batch, "Sequences per step")->check(CLI::PositiveNumber)->capture_default_str();
  train->add_option("--seq", o->seq, "Tokens per sequence")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  train->add_option("--python", o->python, "Python with torch (default $AUDIT_PYTHON or the venv)")
      ->capture_default_str();
  train->add_option("--json", o->json_out, "Also write the figures as JSON to this file");
  add_device_option(*train, g);
  train->callback([o, &g] { run_and_exit("bench train", [&] { return bench_train(*o, g); }); });

  auto f = std::make_shared<BenchForwardOptions>();
  f->python = default_python();
  auto* fwd = bench->add_subcommand(
      "forward", "Forward-pass time: our model vs transformers (eager and sdpa), 0.5B shapes");
  fwd->description(
      "Times one forward pass (all positions' logits, fp32, CPU, no grad) of our model and of\n"
      "transformers' Qwen2ForCausalLM (tests/golden/bench_forward.py) with eager and with sdpa\n"
      "attention, on random weights of Qwen2.5-0.5B's shapes (hidden 896, 24 layers, 14 heads,\n"
      "2 kv heads, head_dim 64, ffn 4864, vocab 151936, tied), same thread count, one run.\n"
      "Prints the median seconds of each and how many times faster ours is.");
  fwd->footer("Example: audit bench forward --threads 2 --seq 512 --repeats 5");
  fwd->add_option("--model", f->model, "Shapes: 0.5b (Qwen2.5-0.5B) or tiny (for tests)")
      ->check(CLI::IsMember({"0.5b", "tiny"}))
      ->capture_default_str();
  fwd->add_option("--threads", f->threads, "Intra-op threads for both sides (0: torch default)")
      ->capture_default_str();
  fwd->add_option("--warmup", f->warmup, "Untimed passes first")->capture_default_str();
  fwd->add_option("--repeats", f->repeats, "Timed passes (median)")->check(CLI::PositiveNumber)->capture_default_str();
  fwd->add_option("--batch", f->batch, "Sequences")->check(CLI::PositiveNumber)->capture_default_str();
  fwd->add_option("--seq", f->seq, "Tokens per sequence")->check(CLI::Range(1, 1 << 16))->capture_default_str();
  fwd->add_option("--python", f->python, "Python with transformers (default $AUDIT_PYTHON or the venv)")
      ->capture_default_str();
  fwd->add_option("--json", f->json_out, "Also write the figures as JSON to this file");
  fwd->callback([f] { run_and_exit("bench forward", [&] { return bench_forward(*f); }); });
  bench->callback([bench, o, &g] {
    if (bench->get_subcommands().empty())
      run_and_exit("bench", [&] { return bench_train(*o, g); });
  });
}

}  // namespace audit::cli
