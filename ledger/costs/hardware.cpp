// The hardware table: datasheet rows for the GPUs the claims name, and this machine's CPU read
// from /proc/cpuinfo with an estimated peak. See ledger/costs/hardware.h and docs/cost-model.md.
#include "ledger/costs/hardware.h"

#include <sched.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

namespace audit::ledger {
namespace {

constexpr double kT = 1e12;   // tera
constexpr double kGB = 1e9;   // bytes

std::vector<Hardware> make_gpu_table() {
  std::vector<Hardware> t;
  {
    Hardware h;
    h.id = "H100-SXM";
    h.name = "NVIDIA H100 SXM5 80GB";
    h.kind = "gpu";
    h.bf16_dense_flops = 989.4 * kT;
    h.fp8_dense_flops = 1978.9 * kT;
    h.fp32_flops = 66.9 * kT;
    h.memory_bytes = 80 * kGB;
    h.memory_bw_bytes_s = 3350 * kGB;
    h.nvlink_bytes_s = 900 * kGB;
    h.network_bits_s = 400e9;
    h.interconnect = "NVLink 4 900 GB/s per GPU (NVSwitch); InfiniBand NDR 400 Gb/s per GPU "
                     "(ConnectX-7) in HGX/DGX H100 nodes";
    h.tdp_w = 700;
    h.source = "NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100, 2023): "
               "BF16 1,979 and FP8 3,958 TFLOPS are with 2:4 sparsity, dense is half; "
               "FP32 67 TFLOPS; 3.35 TB/s HBM3; NVLink 900 GB/s; max TDP 700 W";
    t.push_back(h);
  }
  {
    Hardware h = t.back();
    h.id = "H800-SXM";
    h.name = "NVIDIA H800 SXM5 80GB";
    h.nvlink_bytes_s = 400 * kGB;
    h.interconnect = "NVLink 400 GB/s per GPU (reduced from H100's 900 GB/s); InfiniBand "
                     "400 Gb/s per GPU (DeepSeek-V3 cluster, about 50 GB/s)";
    h.source = "H800 = H100 SXM compute and memory (NVIDIA H100 datasheet: BF16 989.4, FP8 "
               "1,978.9 dense TFLOPS, 3.35 TB/s) with NVLink reduced to 400 GB/s (export "
               "variant); DeepSeek-V3 Technical Report, arXiv:2412.19437 (Dec 2024) sec. 3.1";
    t.push_back(h);
  }
  {
    Hardware h;
    h.id = "H200-SXM";
    h.name = "NVIDIA H200 SXM 141GB";
    h.kind = "gpu";
    h.bf16_dense_flops = 989.4 * kT;
    h.fp8_dense_flops = 1978.9 * kT;
    h.fp32_flops = 66.9 * kT;
    h.memory_bytes = 141 * kGB;
    h.memory_bw_bytes_s = 4800 * kGB;
    h.nvlink_bytes_s = 900 * kGB;
    h.network_bits_s = 400e9;
    h.interconnect = "NVLink 4 900 GB/s per GPU; InfiniBand NDR 400 Gb/s per GPU in HGX H200 nodes";
    h.tdp_w = 700;
    h.source = "NVIDIA H200 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h200, 2024): "
               "BF16 1,979 and FP8 3,958 TFLOPS with sparsity (dense half), 141 GB HBM3e at "
               "4.8 TB/s, NVLink 900 GB/s, TDP up to 700 W";
    t.push_back(h);
  }
  {
    Hardware h;
    h.id = "A100-80GB-SXM";
    h.name = "NVIDIA A100 SXM4 80GB";
    h.kind = "gpu";
    h.bf16_dense_flops = 312 * kT;
    h.fp8_dense_flops = 0;  // Ampere has no fp8 tensor cores
    h.fp32_flops = 19.5 * kT;
    h.memory_bytes = 80 * kGB;
    h.memory_bw_bytes_s = 2039 * kGB;
    h.nvlink_bytes_s = 600 * kGB;
    h.network_bits_s = 200e9;
    h.interconnect = "NVLink 3 600 GB/s per GPU; InfiniBand HDR 200 Gb/s per GPU in DGX A100";
    h.tdp_w = 400;
    h.source = "NVIDIA A100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/a100, 2021): "
               "BF16 312 TFLOPS dense (624 sparse), no FP8, FP32 19.5 TFLOPS, 80 GB HBM2e at "
               "2,039 GB/s, NVLink 600 GB/s, TDP 400 W";
    t.push_back(h);
  }
  return t;
}

std::string normalize(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

int affinity_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

}  // namespace

nlohmann::json to_json(const Hardware& h) {
  nlohmann::json j = {{"id", h.id},
                      {"name", h.name},
                      {"kind", h.kind},
                      {"bf16_dense_flops", h.bf16_dense_flops},
                      {"fp8_dense_flops", h.fp8_dense_flops},
                      {"fp32_flops", h.fp32_flops},
                      {"memory_bytes", h.memory_bytes},
                      {"memory_bw_bytes_s", h.memory_bw_bytes_s},
                      {"nvlink_bytes_s", h.nvlink_bytes_s},
                      {"network_bits_s", h.network_bits_s},
                      {"interconnect", h.interconnect},
                      {"tdp_w", h.tdp_w},
                      {"estimated", h.estimated},
                      {"source", h.source}};
  if (h.kind == "cpu") {
    j["cores"] = h.cores;
    j["clock_hz"] = h.clock_hz;
    j["flops_per_cycle"] = h.flops_per_cycle;
  }
  return j;
}

const std::vector<Hardware>& gpu_table() {
  static const std::vector<Hardware> table = make_gpu_table();
  return table;
}

std::vector<std::string> hardware_ids() {
  std::vector<std::string> ids;
  for (const auto& h : gpu_table()) ids.push_back(h.id);
  ids.push_back("cpu");
  return ids;
}

std::optional<Hardware> find_hardware(const std::string& name) {
  const std::string n = normalize(name);
  if (n.empty()) return std::nullopt;
  if (n == "CPU") return this_cpu();
  static const std::vector<std::pair<std::string, std::string>> aliases = {
      {"H100", "H100-SXM"},      {"H100SXM", "H100-SXM"},      {"H100SXM5", "H100-SXM"},
      {"H10080GB", "H100-SXM"},  {"H800", "H800-SXM"},         {"H800SXM", "H800-SXM"},
      {"H800SXM5", "H800-SXM"},  {"H200", "H200-SXM"},         {"H200SXM", "H200-SXM"},
      {"A100", "A100-80GB-SXM"}, {"A10080GB", "A100-80GB-SXM"}, {"A100SXM", "A100-80GB-SXM"},
      {"A100SXM80GB", "A100-80GB-SXM"}, {"A10080GBSXM", "A100-80GB-SXM"},
      {"A100SXM480GB", "A100-80GB-SXM"}};
  std::string id;
  for (const auto& [alias, target] : aliases) {
    if (n == alias) id = target;
  }
  for (const auto& h : gpu_table()) {
    if (normalize(h.id) == n || normalize(h.name) == n) id = h.id;
  }
  for (const auto& h : gpu_table()) {
    if (h.id == id) return h;
  }
  return std::nullopt;
}

std::string gpu_type_from_nvml_name(const std::string& nvml_name) {
  const std::string n = normalize(nvml_name);  // upper case, letters and digits only
  auto has = [&](const char* part) { return n.find(part) != std::string::npos; };
  // Form factors and packages whose clocks, power or memory differ from the table's rows.
  if (has("PCIE") || has("NVL") || has("GH200") || has("GH100")) return "";
  if (has("H100")) return has("80GB") || has("SXM") ? "H100-SXM" : "";  // "H100 80GB HBM3"
  if (has("H800")) return "H800-SXM";   // NVIDIA H800 (SXM; the PCIe card is refused above)
  if (has("H200")) return "H200-SXM";   // NVIDIA H200 (SXM, 141 GB)
  if (has("A100")) return has("SXM") && has("80GB") ? "A100-80GB-SXM" : "";
  return "";
}

Hardware cpu_from_cpuinfo(const std::string& text, int usable_cores) {
  Hardware h;
  h.id = "cpu";
  h.kind = "cpu";
  h.estimated = true;
  std::istringstream in(text);
  std::string line, model, flags;
  double mhz = 0;
  int logical = 0;
  std::set<std::pair<std::string, std::string>> physical;  // (physical id, core id)
  std::string phys_id;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = trim(line.substr(0, colon));
    std::string value = trim(line.substr(colon + 1));
    if (key == "processor") {
      ++logical;
      phys_id = "0";
    } else if (key == "model name" && model.empty()) {
      model = value;
    } else if (key == "cpu MHz" && mhz == 0) {
      mhz = std::atof(value.c_str());
    } else if (key == "flags" && flags.empty()) {
      flags = " " + value + " ";
    } else if (key == "physical id") {
      phys_id = value;
    } else if (key == "core id") {
      physical.insert({phys_id, value});
    }
  }
  int cores = physical.empty() ? logical : static_cast<int>(physical.size());
  std::string core_note = physical.empty() ? "logical processors" : "physical cores";
  if (usable_cores > 0 && (cores == 0 || usable_cores < cores)) {
    cores = usable_cores;
    core_note = "cores in this process's CPU affinity";
  }
  auto has = [&](const char* f) { return flags.find(std::string(" ") + f + " ") != std::string::npos; };
  int fpc = 8;
  std::string simd = "SSE (2 x 4 lanes, no FMA)";
  if (has("avx512f")) {
    fpc = 64;
    simd = "AVX-512F (2 FMA x 16 lanes x 2)";
  } else if (has("avx2") && has("fma")) {
    fpc = 32;
    simd = "AVX2+FMA (2 FMA x 8 lanes x 2)";
  } else if (has("avx")) {
    fpc = 16;
    simd = "AVX (8-lane add + mul)";
  }
  h.name = model.empty() ? "CPU (model not reported)" : model;
  h.cores = cores;
  h.clock_hz = mhz * 1e6;
  h.flops_per_cycle = fpc;
  h.fp32_flops = cores * h.clock_hz * fpc;
  double bf16_per_cycle = fpc;
  std::string bf16_note = "bf16 taken equal to fp32 (no bf16 matrix units)";
  if (has("amx_bf16")) {
    bf16_per_cycle = 1024;
    bf16_note = "bf16 from AMX tiles (1024 FLOP/cycle/core)";
  } else if (has("avx512_bf16")) {
    bf16_per_cycle = 2.0 * fpc;
    bf16_note = "bf16 from AVX512_BF16 dot products (2x fp32)";
  }
  h.bf16_dense_flops = cores * h.clock_hz * bf16_per_cycle;
  h.fp8_dense_flops = 0;
  h.interconnect = "none (single host)";
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "estimated: %d %s x %.3f GHz (cpu MHz in /proc/cpuinfo) x %d fp32 FLOP/cycle "
                "from %s = %.3g FLOP/s fp32; %s; memory bandwidth and TDP not known",
                cores, core_note.c_str(), mhz / 1000.0, fpc, simd.c_str(), h.fp32_flops,
                bf16_note.c_str());
  h.source = buf;
  if (mhz <= 0) h.source += " (no clock reported: peaks are 0)";
  return h;
}

const Hardware& this_cpu() {
  static const Hardware cpu = [] {
    std::ifstream f("/proc/cpuinfo");
    if (!f) {
      Hardware h;
      h.id = "cpu";
      h.kind = "cpu";
      h.name = "CPU";
      h.estimated = true;
      h.source = "/proc/cpuinfo could not be read: CPU peak unknown (0)";
      return h;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return cpu_from_cpuinfo(ss.str(), affinity_cores());
  }();
  return cpu;
}

}  // namespace audit::ledger
