// Google Benchmark cases for HfTokenizer (datasets/hf_tokenizer): single-thread encode
// throughput on >= 10 MB of the mixed corpus of tests/golden/make_tokenizers.py (Latin with
// accents, CJK, emoji, numbers, code, runs of spaces), against the Rust `tokenizers` library
// measured in the same run on the same lines (tests/golden/tokenize_peer.py --bench: one
// Tokenizer.encode call per line, TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1).
// Counters: MB/s (ours), tokenizers_MB/s, and ratio = ours / tokenizers, in bytes per
// CPU-second; tokens and tokenizers_tokens (equal when both encode alike). The fixtures are
// trained at start-up in a temporary folder (a few seconds), never downloaded.
#include "common/python_peer.h"   // default_python, shell_quote, run_python_json
#include "common/resources.h"     // resource_path
#include "datasets/hf_tokenizer/hf_tokenizer.h"

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace audit::datasets {
namespace {

constexpr size_t kMinBytes = 10u << 20;  // 10 MiB of text per pass

struct Fixtures {
  std::string dir;            // the trained tokenizers, one folder each
  std::string text_file;      // the >= 10 MiB text, one case per line
  std::vector<std::string> lines;
  size_t bytes = 0;
  std::string error;          // why the fixtures could not be made
  std::map<std::string, nlohmann::json> peer;  // tokenizers' timing per fixture
  ~Fixtures() {  // the temporary folder goes with the process
    if (!dir.empty()) std::system(("rm -rf " + shell_quote(dir)).c_str());
  }
};

Fixtures& fixtures() {
  static Fixtures f = [] {
    Fixtures x;
    char tmpl[] = "/tmp/audit_tok_bench.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      x.error = "cannot make a temporary folder";
      return x;
    }
    x.dir = tmpl;
    try {
      run_python_json(shell_quote(default_python()) + " " +
                          shell_quote(resource_path("peers/make_tokenizers.py")) + " " +
                          shell_quote(x.dir),
                      "make_tokenizers.py");
    } catch (const std::exception& e) {
      x.error = e.what();
      return x;
    }
    std::ifstream in(x.dir + "/corpus.txt");
    std::vector<std::string> corpus;
    for (std::string l; std::getline(in, l);) corpus.push_back(l);
    while (x.bytes < kMinBytes && !corpus.empty())
      for (const auto& l : corpus) x.lines.push_back(l), x.bytes += l.size();
    x.text_file = x.dir + "/bench.txt";
    std::ofstream out(x.text_file);
    for (size_t i = 0; i < x.lines.size(); ++i) out << x.lines[i] << (i + 1 < x.lines.size() ? "\n" : "");
    return x;
  }();
  return f;
}

void BM_HfTokenizerEncode(benchmark::State& state, const std::string& name) {
  Fixtures& f = fixtures();
  if (!f.error.empty()) {
    state.SkipWithError(("fixtures: " + f.error).c_str());
    return;
  }
  const auto tok = HfTokenizer::load(f.dir + "/" + name);
  size_t tokens = 0;
  double cpu_seconds = 0;  // this thread's CPU time in the timed loops
  for (auto _ : state) {
    const std::clock_t c0 = std::clock();
    tokens = 0;
    for (const auto& l : f.lines) tokens += tok->encode(l).size();
    benchmark::DoNotOptimize(tokens);
    cpu_seconds += static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * f.bytes));
  const double ours_mbps =
      static_cast<double>(f.bytes) * static_cast<double>(state.iterations()) / cpu_seconds / 1e6;
  state.counters["MB/s"] = ours_mbps;
  state.counters["tokens"] = static_cast<double>(tokens);
  // The Rust side, once per fixture, on the same lines.
  if (!f.peer.count(name)) {
    try {
      f.peer[name] = run_python_json(
          "TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 " + shell_quote(default_python()) +
              " " + shell_quote(resource_path("peers/tokenize_peer.py")) + " --bench " +
              shell_quote(f.dir + "/" + name) + " " + shell_quote(f.text_file),
          "tokenize_peer.py --bench");
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      return;
    }
  }
  const auto& p = f.peer[name];
  const double peer_mbps = p["bytes"].get<double>() / p["cpu_seconds"].get<double>() / 1e6;
  state.counters["tokenizers_MB/s"] = peer_mbps;
  state.counters["tokenizers_tokens"] = p["tokens"].get<double>();
  state.counters["MB_of_text"] = static_cast<double>(f.bytes) / 1e6;
  // ratio: ours over tokenizers, both in bytes per CPU-second of the one thread (the peer
  // reports its process CPU time), so other load on the machine does not skew it.
  state.counters["ratio"] = ours_mbps / peer_mbps;
}

BENCHMARK_CAPTURE(BM_HfTokenizerEncode, qwen2, std::string("qwen2"))
    ->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_HfTokenizerEncode, llama3, std::string("llama3"))
    ->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_HfTokenizerEncode, llama2, std::string("llama2"))
    ->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_HfTokenizerEncode, gpt2, std::string("gpt2"))
    ->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace audit::datasets
