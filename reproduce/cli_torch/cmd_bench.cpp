// `audit bench` and `audit bench train`: SFT tokens/s of full train steps of the C++ trainer
// against transformers' Qwen2ForCausalLM in PyTorch eager (tests/golden/bench_train.py, same
// torch package, same thread count) with attn_implementation "eager" and "sdpa", on the same
// shapes, batch and sequence, in one run, with the ratios: the s1-mini recipe's model, a small one
// (0.83M parameters), one about 11x larger than that, and a ~50M-parameter one.
// `audit bench forward`: one forward pass (all logits) of our model against transformers'
// Qwen2ForCausalLM with eager and with sdpa attention (tests/golden/bench_forward.py), random
// weights of Qwen2.5-0.5B's shapes by default, same thread count, in one run.
// `audit bench generate`: batched greedy generation with the KV cache (reproduce/model/generate.h)
// against transformers' `generate` (greedy, use_cache, eager and sdpa attention;
// tests/golden/bench_generate.py) on the same checkpoint, which the peer writes at run time: a
// tiny shape and a 57M-parameter one, batch 1 and 16, fp32 on the CPU, same thread count.
// `audit bench comm` (cmd_bench_comm.cpp): collectives over several ranks against the replay's
// communication model, and tokens/s per process from one process to several.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <stdlib.h>  // mkdtemp
#include <time.h>    // clock_gettime

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "reproduce/cli/cli.h"
#include "reproduce/cli_torch/cmd_bench_comm.h"
#include "reproduce/model/checkpoint.h"  // load_model
#include "reproduce/model/generate.h"
#include "reproduce/trainer/trainer.h"  // measure_train_throughput, bench_model_config
#include "common/errors.h"  // InputError
#include "common/python_peer.h"
#include "common/resources.h"

namespace audit::cli {

namespace {

// The figures of a benchmark: to --json-out FILE when given, and to stdout with --json.
void emit_json(const nlohmann::json& j, const std::string& path, JsonStdout& out) {
  if (!path.empty()) {
    std::ofstream f(path);
    if (!f) throw std::runtime_error("cannot write " + path);
    f << j.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write " + path);
  }
  if (out.active()) out.print(j);
}

struct BenchTrainOptions {
  std::string models = "both";  // mini | small | large | 50m | both (small, large) | all
  int threads = 0;              // 0: torch's default for this machine
  int warmup = 2;
  int steps = 5;
  int repeats = 1;  // alternate C++ and Python this many times; the median is reported
  int64_t batch = 16;
  int64_t seq = 256;
  std::string python;
  std::string json_out;  // --json-out FILE
  bool json = false;     // --json: the figures to stdout, the tables to stderr
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

int bench_train(const BenchTrainOptions& o, const GlobalOptions& g, JsonStdout& out) {
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
  emit_json(results, o.json_out, out);
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
  std::string json_out;  // --json-out FILE
  bool json = false;     // --json: the figures to stdout, the tables to stderr
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

int bench_forward(const BenchForwardOptions& o, JsonStdout& out) {
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
  emit_json(nlohmann::json{{"model", o.model},
                        {"config", c.to_string()},
                        {"params", c.parameter_count()},
                        {"threads", threads},
                        {"batch", o.batch},
                        {"seq", o.seq},
                        {"ours_s", ours},
                        {"transformers", py},
                        {"ratio_vs_eager", t_eager / t_ours},
                        {"ratio_vs_sdpa", t_sdpa / t_ours}},
            o.json_out, out);
  return 0;
}


struct BenchGenerateOptions {
  std::string models = "both";  // tiny | 57m | both
  std::string batches = "1,16";
  int threads = 0;
  int warmup = 1;
  int repeats = 3;
  int64_t max_new_tokens = 64;
  int64_t prompt_len = 32;  // the longest prompt of a batch; rows vary down to half of it
  std::string python;
  std::string json_out;  // --json-out FILE
  bool json = false;     // --json: the figures to stdout, the tables to stderr
};

// The shapes `bench generate` builds (a qwen2 model: q/k/v bias, rope theta 1e6).
struct GenerateShape {
  std::string name;
  int64_t vocab, hidden, layers, heads, kv_heads, head_dim, ffn;
  bool tied;
};

GenerateShape generate_shape(const std::string& name) {
  if (name == "57m") return {name, 32000, 512, 8, 8, 2, 64, 1536, false};  // 56.9M parameters
  return {"tiny", 1000, 64, 2, 4, 2, 16, 128, true};  // bench forward's tiny shape, 0.14M
}

// Batch b of `bench generate`: b prompts whose lengths step down from prompt_len to about half
// of it (so every batch of more than one is left-padded), ids drawn from a fixed-seed generator.
std::vector<std::vector<int64_t>> bench_prompts(int64_t batch, int64_t prompt_len, int64_t vocab) {
  std::vector<std::vector<int64_t>> prompts;
  uint64_t state = 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(batch);
  const int64_t spread = std::max<int64_t>(prompt_len / 2, 1);
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<int64_t> p(static_cast<size_t>(prompt_len - (i * 5) % spread));
    for (auto& id : p) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      id = 1 + static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(vocab - 1));
    }
    prompts.push_back(p);
  }
  return prompts;
}

// Removes the benchmark's temporary checkpoint folder however the run ends (std::filesystem's
// remove_all crashes in a LibTorch-linked binary; rm does not).
struct TempFolder {
  std::string path;
  explicit TempFolder(const std::string& pattern) {
    std::string buf = pattern;
    if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("cannot create " + pattern);
    path = buf;
  }
  ~TempFolder() { std::system(("rm -rf " + shell_quote(path)).c_str()); }
};

// The matrix products alone of `steps` one-token decoding steps of batch b (every projection, the
// MLP and the head, on the model's own weights), median of `repeats` after `warmup`: the part of a
// greedy generation that both implementations hand to the same BLAS, so neither can be faster than
// this floor (prefill and attention come on top).
double matmul_floor(model::CausalLM& m, int64_t b, int64_t steps, int warmup, int repeats) {
  std::vector<torch::Tensor> weights, inputs;
  for (const auto& p : m->named_parameters())
    if (p.value().dim() == 2 && p.key() != "model.embed_tokens.weight") weights.push_back(p.value());
  if (m->cfg.tie_embeddings) weights.push_back(m->model->embed_tokens->weight);
  for (const auto& w : weights) inputs.push_back(torch::randn({b, w.size(1)}));
  std::vector<double> samples;
  for (int i = 0; i < warmup + repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; ++s)
      for (size_t k = 0; k < weights.size(); ++k) at::linear(inputs[k], weights[k]);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) samples.push_back(dt);
  }
  return median(samples);
}

// CPU time of this process (all its threads) in seconds.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int bench_generate(const BenchGenerateOptions& o, JsonStdout& out) {
  const int threads = o.threads > 0 ? o.threads : torch::get_num_threads();
  torch::set_num_threads(threads);
  std::vector<int64_t> batches;
  {
    std::stringstream ss(o.batches);
    for (std::string item; std::getline(ss, item, ',');) {
      char* end = nullptr;
      const long long b = std::strtoll(item.c_str(), &end, 10);
      if (item.empty() || *end != '\0' || b < 1 || b > 4096)
        throw InputError("--batches", 0, 0, "batches",
                         "\"" + item + "\" is not a batch size in [1, 4096] (e.g. --batches 1,16)");
      batches.push_back(b);
    }
  }
  std::vector<std::string> shapes;
  if (o.models == "tiny" || o.models == "both") shapes.push_back("tiny");
  if (o.models == "57m" || o.models == "both") shapes.push_back("57m");
  std::printf("audit bench generate: batched greedy generation with the KV cache, fp32, CPU,\n"
              "%lld new tokens per prompt, prompts of %lld down to %lld tokens (left-padded),\n"
              "%d warmup + %d timed calls (median), %d thread(s), same checkpoint on both sides.\n"
              "transformers generate(do_sample=False, use_cache=True): %s\n\n",
              static_cast<long long>(o.max_new_tokens), static_cast<long long>(o.prompt_len),
              static_cast<long long>(o.prompt_len - (std::max<int64_t>(o.prompt_len / 2, 1) - 1)),
              o.warmup, o.repeats, threads, o.python.c_str());
  std::printf("%-5s %7s %5s %8s %8s %8s %9s %9s %9s %9s %8s %11s %6s\n", "model", "params",
              "batch", "audit s", "eager s", "sdpa s", "vs eager", "vs sdpa", "CPU eager",
              "CPU sdpa", "matmul s", "audit tok/s", "agree");
  nlohmann::json results = nlohmann::json::array();
  for (const auto& name : shapes) {
    const auto s = generate_shape(name);
    TempFolder tmp("/tmp/audit-bench-generate-XXXXXX");
    const std::string ckpt = tmp.path + "/model";
    std::ostringstream shape_args;
    shape_args << " --vocab " << s.vocab << " --hidden " << s.hidden << " --layers " << s.layers
               << " --heads " << s.heads << " --kv-heads " << s.kv_heads << " --head-dim "
               << s.head_dim << " --ffn " << s.ffn << (s.tied ? "" : " --untied")
               << " --threads " << threads;
    const std::string peer = shell_quote(o.python) + " " +
                             shell_quote(resource_path("peers/bench_generate.py"));
    run_python_json(peer + " --make " + shell_quote(ckpt) + shape_args.str() + " 2>&1",
                    "bench_generate.py --make");

    nlohmann::json prompt_file = {{"batches", nlohmann::json::array()}};
    std::vector<double> ours_s, ours_cpu_s, floor_s;
    std::vector<std::vector<std::vector<int64_t>>> ours_tokens;
    int64_t params = 0;
    {
      torch::NoGradGuard no_grad;
      auto m = model::load_model(ckpt, torch::kCPU, torch::kFloat);
      params = m->cfg.parameter_count();
      for (int64_t b : batches) {
        const auto prompts = bench_prompts(b, o.prompt_len, s.vocab);
        prompt_file["batches"].push_back(prompts);
        generate::GenerateConfig cfg;
        cfg.max_new_tokens = o.max_new_tokens;
        cfg.batch_size = b;
        cfg.pad_id = 0;
        std::vector<double> samples, cpu;
        std::vector<generate::Generation> out;
        for (int i = 0; i < o.warmup + o.repeats; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          const double c0 = process_cpu_seconds();
          out = generate::generate(m, prompts, cfg);
          const double dt =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (i >= o.warmup) {
            samples.push_back(dt);
            cpu.push_back(process_cpu_seconds() - c0);
          }
        }
        ours_s.push_back(median(samples));
        ours_cpu_s.push_back(median(cpu));
        floor_s.push_back(matmul_floor(m, b, o.max_new_tokens - 1, o.warmup, o.repeats));
        std::vector<std::vector<int64_t>> tokens;
        for (const auto& g : out) tokens.push_back(g.tokens);
        ours_tokens.push_back(tokens);
      }
    }  // freed before transformers loads its copy
    const std::string prompts_path = tmp.path + "/prompts.json";
    {
      std::ofstream f(prompts_path);
      f << prompt_file.dump() << "\n";
      if (!f) throw std::runtime_error("cannot write " + prompts_path);
    }
    std::ostringstream cmd;
    cmd << peer << " --model " << shell_quote(ckpt) << " --prompts " << shell_quote(prompts_path)
        << " --max-new-tokens " << o.max_new_tokens << " --warmup " << o.warmup << " --repeats "
        << o.repeats << " --threads " << threads << " --attn eager,sdpa 2>&1";
    const auto py = run_python_json(cmd.str(), "transformers generate benchmark");
    for (size_t k = 0; k < batches.size(); ++k) {
      const int64_t b = batches[k];
      double eager = 0, sdpa = 0, eager_cpu = 0, sdpa_cpu = 0;
      int agree = 0;
      for (const auto& r : py.at("results")) {
        if (r.at("batch").get<int64_t>() != b) continue;
        if (r.at("attn") == "eager") {
          eager = r.at("median_s").get<double>();
          eager_cpu = r.at("cpu_median_s").get<double>();
          const auto hf = r.at("tokens").get<std::vector<std::vector<int64_t>>>();
          for (size_t i = 0; i < hf.size() && i < ours_tokens[k].size(); ++i)
            agree += hf[i] == ours_tokens[k][i];
        } else if (r.at("attn") == "sdpa") {
          sdpa = r.at("median_s").get<double>();
          sdpa_cpu = r.at("cpu_median_s").get<double>();
        }
      }
      const double t = ours_s[k], tc = ours_cpu_s[k];
      std::printf("%-5s %6.2fM %5lld %8.3f %8.3f %8.3f %8.2fx %8.2fx %8.2fx %8.2fx %8.3f %11.0f "
                  "%3d/%-3lld\n",
                  name.c_str(), params / 1e6, static_cast<long long>(b), t, eager, sdpa, eager / t,
                  sdpa / t, eager_cpu / tc, sdpa_cpu / tc, floor_s[k], b * o.max_new_tokens / t,
                  agree, static_cast<long long>(b));
      std::fflush(stdout);
      results.push_back({{"model", name},
                         {"params", params},
                         {"batch", b},
                         {"threads", threads},
                         {"max_new_tokens", o.max_new_tokens},
                         {"prompt_len", o.prompt_len},
                         {"audit_median_s", t},
                         {"eager_median_s", eager},
                         {"sdpa_median_s", sdpa},
                         {"audit_cpu_median_s", tc},
                         {"eager_cpu_median_s", eager_cpu},
                         {"sdpa_cpu_median_s", sdpa_cpu},
                         {"ratio_vs_eager_cpu_time", eager_cpu / tc},
                         {"ratio_vs_sdpa_cpu_time", sdpa_cpu / tc},
                         {"matmul_floor_s", floor_s[k]},
                         {"ratio_vs_eager", eager / t},
                         {"ratio_vs_sdpa", sdpa / t},
                         {"rows_agreeing_with_eager", agree}});
    }
  }
  std::printf("\nvs eager / vs sdpa: how many times faster ours is (transformers median / ours);\n"
              "CPU eager / CPU sdpa: the same with process CPU time in place of wall time, which\n"
              "other processes on a shared machine disturb less.\n"
              "matmul s: the decoding steps' matrix products alone (same BLAS on both sides): no\n"
              "implementation's call is faster, so eager s / matmul s bounds any ratio.\n"
              "agree: rows whose greedy tokens equal transformers eager's (random weights give\n"
              "near-tied logits, where fp32 rounding may pick the other token).\n");
  emit_json(results, o.json_out, out);
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, GlobalOptions& g) {
  auto* bench = app.add_subcommand("bench", "Benchmarks against PyTorch eager (default: train)");
  bench->footer("Without a subcommand runs `audit bench train` with its defaults.\n"
                "Example: audit bench train --threads 2 --model small\n\n" +
                std::string(kExitCodesHelp));
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
      "  audit bench train --threads 2 --steps 10 --repeats 3 --json-out bench.json\n"
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
  train->add_option("--json-out", o->json_out, "Also write the figures as JSON to this file");
  train->add_flag("--json", o->json, "Print the figures as JSON to stdout (the tables go to stderr)");
  add_device_option(*train, g);
  train->callback([o, &g] { run_and_exit("bench train", [&] {
      JsonStdout out(o->json);
      return bench_train(*o, g, out);
    }); });

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
  fwd->add_option("--json-out", f->json_out, "Also write the figures as JSON to this file");
  fwd->add_flag("--json", f->json, "Print the figures as JSON to stdout (the table goes to stderr)");
  fwd->callback([f] { run_and_exit("bench forward", [&] {
      JsonStdout out(f->json);
      return bench_forward(*f, out);
    }); });
  auto gen = std::make_shared<BenchGenerateOptions>();
  gen->python = default_python();
  auto* gcmd = bench->add_subcommand(
      "generate", "Greedy generation time with the KV cache: ours vs transformers.generate");
  gcmd->description(
      "Has tests/golden/bench_generate.py write a random qwen2 checkpoint of each shape (tiny:\n"
      "vocab 1000, hidden 64, 2 layers, 0.14M parameters; 57m: vocab 32000, hidden 512, 8 layers,\n"
      "8/2 heads of 64, ffn 1536, untied, 56.9M), loads it, and times batched greedy generation\n"
      "with the KV cache (audit::generate::generate) against transformers' generate(do_sample=\n"
      "False, use_cache=True) with eager and with sdpa attention on the same checkpoint and the\n"
      "same left-padded prompts, fp32 on the CPU, same thread count. Prints the median seconds per\n"
      "call, how many times faster ours is, and how many rows' tokens agree.");
  gcmd->footer("Example: audit bench generate --threads 1 --batches 1,16 --repeats 5");
  gcmd->add_option("--model", gen->models, "Shapes: tiny, 57m or both")
      ->check(CLI::IsMember({"tiny", "57m", "both"}))
      ->capture_default_str();
  gcmd->add_option("--batches", gen->batches, "Comma-separated batch sizes")->capture_default_str();
  gcmd->add_option("--threads", gen->threads, "Intra-op threads for both sides (0: torch default)")
      ->capture_default_str();
  gcmd->add_option("--warmup", gen->warmup, "Untimed calls first")->capture_default_str();
  gcmd->add_option("--repeats", gen->repeats, "Timed calls (median)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  gcmd->add_option("--max-new-tokens", gen->max_new_tokens, "Tokens generated per prompt")
      ->check(CLI::Range(1, 1 << 14))
      ->capture_default_str();
  gcmd->add_option("--prompt-len", gen->prompt_len, "Longest prompt (rows step down to half)")
      ->check(CLI::Range(1, 1 << 14))
      ->capture_default_str();
  gcmd->add_option("--python", gen->python, "Python with transformers (default $AUDIT_PYTHON or the venv)")
      ->capture_default_str();
  gcmd->add_option("--json-out", gen->json_out, "Also write the figures as JSON to this file");
  gcmd->add_flag("--json", gen->json, "Print the figures as JSON to stdout (the table goes to stderr)");
  gcmd->callback([gen] { run_and_exit("bench generate", [&] {
      JsonStdout out(gen->json);
      return bench_generate(*gen, out);
    }); });
  add_bench_comm_command(*bench, g);
  bench->callback([bench, o, &g] {
    if (bench->get_subcommands().empty())
      run_and_exit("bench", [&] {
        JsonStdout out(o->json);
        return bench_train(*o, g, out);
      });
  });
}

}  // namespace audit::cli
