// The hardware table of the cost model: peak dense bf16/fp8 FLOP/s, memory bandwidth,
// interconnect and TDP of the GPUs the shipped claims name (H100 SXM, H800 SXM, H200 SXM,
// A100 80GB SXM), each with its source, plus the CPU this process runs on, read from
// /proc/cpuinfo and marked estimated (cores x clock x FLOP per cycle from its SIMD/FMA width).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace audit::ledger {

struct Hardware {
  std::string id;                 // canonical key, e.g. "H100-SXM" (price keys use it)
  std::string name;               // human name, e.g. "NVIDIA H100 SXM5 80GB"
  std::string kind;               // "gpu" | "cpu"
  double bf16_dense_flops = 0;    // peak dense (no 2:4 sparsity) bf16 FLOP/s per device
  double fp8_dense_flops = 0;     // peak dense fp8 FLOP/s per device; 0 = no fp8 tensor cores
  double fp32_flops = 0;          // peak fp32 (non-tensor) FLOP/s per device
  double memory_bytes = 0;        // device memory
  double memory_bw_bytes_s = 0;   // device memory bandwidth; 0 = not known
  double nvlink_bytes_s = 0;      // NVLink total bandwidth per GPU (bidirectional); 0 = none
  double network_bits_s = 0;      // typical scale-out NIC per GPU (InfiniBand), bits/s; 0 = n/a
  std::string interconnect;       // words: "NVLink 4 900 GB/s; InfiniBand NDR 400 Gb/s per GPU"
  double tdp_w = 0;               // board power; 0 = not known
  int cores = 0;                  // CPU only: cores counted in the peak
  double clock_hz = 0;            // CPU only: clock used in the peak
  int flops_per_cycle = 0;        // CPU only: fp32 FLOP per cycle per core used in the peak
  bool estimated = false;         // true when the peaks are estimated, not from a datasheet
  std::string source;             // datasheet or the estimate's formula and inputs
};

nlohmann::json to_json(const Hardware& h);

// The GPU rows (datasheet figures).
const std::vector<Hardware>& gpu_table();

// Looks a device up by id or alias, case-insensitive: "H100", "h100-sxm", "H100 SXM",
// "H800", "H200", "A100", "A100-80GB", ..., and "cpu" (this machine's CPU). nullopt if unknown.
std::optional<Hardware> find_hardware(const std::string& name);

// The hardware-table id of the GPU NVML names (nvmlDeviceGetName), so that measured GPU time is
// priced as the GPU that ran it: "NVIDIA H100 80GB HBM3" -> "H100-SXM", "NVIDIA H800" ->
// "H800-SXM", "NVIDIA H200" -> "H200-SXM", "NVIDIA A100-SXM4-80GB" -> "A100-80GB-SXM". "" when
// the table has no row for it, which includes the variants whose figures differ from the row of
// the same chip (H100/H200 NVL and PCIe, H800 PCIe, A100 40GB and PCIe, GH200) and every other
// GPU (L40S, RTX 4090, V100, ...): the caller then says the detected GPU is not priced.
std::string gpu_type_from_nvml_name(const std::string& nvml_name);

// Ids accepted by find_hardware (for error messages).
std::vector<std::string> hardware_ids();

// The CPU as described by a /proc/cpuinfo text. usable_cores caps the core count (the process's
// CPU affinity); <= 0 means no cap. Physical cores are counted from (physical id, core id)
// pairs when present, else logical processors. FLOP per cycle per core (fp32): 64 with AVX-512F
// (2 FMA units x 16 lanes x 2), 32 with AVX2+FMA, 16 with AVX, 8 otherwise; bf16 taken equal to
// fp32 unless amx_bf16 (1024 bf16 FLOP/cycle/core) or avx512_bf16 (2x fp32) is present.
Hardware cpu_from_cpuinfo(const std::string& cpuinfo_text, int usable_cores);

// This machine's CPU: reads /proc/cpuinfo and the affinity mask (cached after the first call).
// When /proc/cpuinfo cannot be read, the row says so in source and its peaks are 0.
const Hardware& this_cpu();

}  // namespace audit::ledger
