// Device capability queries and the kernel support table (see kernels/devices/devices.h). Compiles with
// and without CUDA: every CUDA call sits behind AUDIT_HAVE_CUDA.
#include "kernels/devices/devices.h"

#include <stdexcept>

#ifdef AUDIT_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace audit::kernels {
namespace {

// What each CUDA kernel needs. The minimum compute capability is the lowest architecture
// CMakeLists.txt builds (CMAKE_CUDA_ARCHITECTURES 80 90, each with PTX, so newer GPUs JIT it).
struct KernelEntry {
  Kernel kernel;
  const char* name;
  int min_cc_major, min_cc_minor;
};
constexpr KernelEntry kKernels[] = {
    {Kernel::kMoeGating, "moe_gating", 8, 0},
};

const KernelEntry& entry(Kernel k) {
  for (const auto& e : kKernels)
    if (e.kernel == k) return e;
  throw std::logic_error("kernels: kernel missing from the support table");
}

#ifdef AUDIT_HAVE_CUDA
// Vendor peak memory bandwidth (bytes/s) by device-name substring, most specific first.
// Sources: NVIDIA datasheets (H200 SXM 4.8 TB/s, H100 SXM 3.35 TB/s, H100 PCIe 2.0 TB/s,
// H100 NVL 3.9 TB/s, H800 SXM 3.35 TB/s, A100 80GB SXM 2.039 TB/s, A100 80GB PCIe 1.935 TB/s,
// A100 40GB 1.555 TB/s, L40S 864 GB/s, L4 300 GB/s).
struct PeakEntry {
  const char* name_part;
  double bytes_per_s;
};
constexpr PeakEntry kPeakTable[] = {
    {"NVIDIA H200", 4.8e12},          {"H100 NVL", 3.9e12},
    {"H100 PCIe", 2.0e12},            {"H100 80GB HBM3", 3.35e12},
    {"H800", 3.35e12},                {"A100-SXM4-80GB", 2.039e12},
    {"A100 80GB PCIe", 1.935e12},     {"A100-SXM4-40GB", 1.555e12},
    {"A100-PCIE-40GB", 1.555e12},     {"L40S", 0.864e12},
    {"NVIDIA L4", 0.300e12},
};

std::string cuda_error_text(cudaError_t err) {
  return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
}
#endif

}  // namespace

bool cuda_compiled() {
#ifdef AUDIT_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef AUDIT_HAVE_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the error so later runtime calls start clean
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

std::string cuda_unavailable_reason() {
#ifdef AUDIT_HAVE_CUDA
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return "cudaGetDeviceCount failed: " + cuda_error_text(err);
  }
  if (n == 0) return "cudaGetDeviceCount reports 0 CUDA devices";
  return "";
#else
  return "built without CUDA (AUDIT_HAVE_CUDA unset: -DAUDIT_CUDA=OFF or no nvcc)";
#endif
}

CudaDeviceInfo cuda_device_info(int index) {
#ifdef AUDIT_HAVE_CUDA
  auto check = [index](cudaError_t err, const char* what) {
    if (err != cudaSuccess)
      throw std::runtime_error("cuda_device_info(" + std::to_string(index) + "): " + what +
                               " failed: " + cuda_error_text(err));
  };
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
  CudaDeviceInfo info;
  info.index = index;
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.total_memory_bytes = prop.totalGlobalMem;
  for (const auto& p : kPeakTable) {
    if (info.name.find(p.name_part) != std::string::npos) {
      info.peak_memory_bytes_per_s = p.bytes_per_s;
      info.peak_memory_source = std::string("vendor spec for '") + p.name_part + "'";
      return info;
    }
  }
  int clock_khz = 0, bus_bits = 0;
  check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, index),
        "cudaDeviceGetAttribute(MemoryClockRate)");
  check(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, index),
        "cudaDeviceGetAttribute(GlobalMemoryBusWidth)");
  info.peak_memory_bytes_per_s = 2.0 * clock_khz * 1e3 * bus_bits / 8.0;
  info.peak_memory_source = "2 x memory clock " + std::to_string(clock_khz) + " kHz x bus " +
                            std::to_string(bus_bits) + " bits (runtime attributes)";
  return info;
#else
  throw std::runtime_error("cuda_device_info(" + std::to_string(index) +
                           "): " + cuda_unavailable_reason());
#endif
}

KernelSupport kernel_support(Kernel kernel, const std::string& device) {
  const KernelEntry& k = entry(kernel);
  if (device == "cpu") return {true, ""};
  int index = -1;
  if (device == "cuda") {
    index = 0;
  } else if (device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
             device.find_first_not_of("0123456789", 5) == std::string::npos &&
             device.size() < 15) {
    index = std::stoi(device.substr(5));
  } else {
    return {false, "unknown device '" + device + "' (expected cpu, cuda or cuda:N)"};
  }
  if (!cuda_available()) return {false, cuda_unavailable_reason()};
  if (index >= cuda_device_count())
    return {false, device + ": only " + std::to_string(cuda_device_count()) + " CUDA device(s)"};
  const CudaDeviceInfo info = cuda_device_info(index);
  if (info.cc_major < k.min_cc_major ||
      (info.cc_major == k.min_cc_major && info.cc_minor < k.min_cc_minor))
    return {false, std::string(k.name) + " needs compute capability >= " +
                       std::to_string(k.min_cc_major) + "." + std::to_string(k.min_cc_minor) +
                       "; " + info.name + " is " + std::to_string(info.cc_major) + "." +
                       std::to_string(info.cc_minor)};
  return {true, ""};
}

const char* kernel_name(Kernel kernel) { return entry(kernel).name; }

std::vector<Kernel> all_kernels() {
  std::vector<Kernel> out;
  for (const auto& e : kKernels) out.push_back(e.kernel);
  return out;
}

}  // namespace audit::kernels
