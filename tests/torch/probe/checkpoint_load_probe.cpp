// Measures the host memory that loading a Hugging Face checkpoint costs beyond the model's own
// parameters (tests/torch/checkpoint_test.cpp runs it in its own process, so nothing else the
// test binary did counts). Usage: checkpoint_load_probe DIR. Builds the model config.json
// describes (fp32, CPU), resets the peak resident size (writes "5" to /proc/self/clear_refs),
// loads the checkpoint, and prints one JSON line: {"rss_before_kb", "hwm_after_kb",
// "largest_shard_bytes", "total_bytes", "shards", "build_s" (header reads and model
// construction), "load_s" (load_checkpoint)}. Exit 2 on bad input, 3 when /proc cannot be
// used.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <torch/torch.h>

#include "common/errors.h"
#include "reproduce/model/checkpoint.h"

namespace {

long status_kb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string f = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.compare(0, f.size(), f) == 0) return std::stol(line.substr(f.size()));
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CHECKPOINT_DIR\n", argv[0]);
    return 2;
  }
  try {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const auto ckpt = audit::hf::open_checkpoint(argv[1]);
    auto cfg = audit::model::model_config(ckpt.config);
    cfg.initialize = false;  // as load_model builds it
    audit::model::CausalLM m(cfg);
    {
      // The parameters' own pages, resident before the measurement: what is measured is what
      // loading needs beyond them.
      torch::NoGradGuard no_grad;
      for (auto& p : m->parameters()) p.zero_();
    }
    const auto t1 = clock::now();
    uint64_t largest = 0;
    for (const auto& s : ckpt.shards) largest = std::max<uint64_t>(largest, s.header.file_size);
    {
      std::ofstream clear("/proc/self/clear_refs");
      clear << "5";
      clear.flush();
      if (!clear) {
        std::fprintf(stderr, "cannot write /proc/self/clear_refs\n");
        return 3;
      }
    }
    const long before = status_kb("VmRSS");
    const auto t2 = clock::now();
    audit::model::load_checkpoint(m, ckpt);
    const auto t3 = clock::now();
    const long hwm = status_kb("VmHWM");
    auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
    if (before < 0 || hwm < 0) return 3;
    std::printf(
        "{\"rss_before_kb\": %ld, \"hwm_after_kb\": %ld, \"largest_shard_bytes\": %llu, "
        "\"total_bytes\": %llu, \"shards\": %zu, \"build_s\": %.3f, \"load_s\": %.3f}\n",
        before, hwm, static_cast<unsigned long long>(largest),
        static_cast<unsigned long long>(ckpt.total_bytes()), ckpt.shards.size(), secs(t1 - t0),
        secs(t3 - t2));
    return 0;
  } catch (const audit::InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
