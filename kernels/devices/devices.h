// Which devices can run which kernels: the one place that says so. Whether this build has CUDA,
// whether a CUDA device is present at run time (false, with the reason, when CUDA is not compiled
// in or no device answers), a device's description with its peak memory bandwidth, and the table
// of kernels with what each needs. Plain C++; the CUDA calls live in devices.cpp behind
// AUDIT_HAVE_CUDA.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace audit::kernels {

// True when this build compiled kernels/*.cu (AUDIT_HAVE_CUDA).
bool cuda_compiled();

// Number of CUDA devices the runtime reports; 0 when built without CUDA, when there is no
// driver, or when cudaGetDeviceCount fails.
int cuda_device_count();

// cuda_device_count() > 0.
bool cuda_available();

// Why cuda_available() is false, in words for a skip message ("" when it is true), e.g.
// "built without CUDA (AUDIT_HAVE_CUDA unset: -DAUDIT_CUDA=OFF or no nvcc)" or
// "cudaGetDeviceCount failed: cudaErrorNoDevice: no CUDA-capable device is detected".
std::string cuda_unavailable_reason();

struct CudaDeviceInfo {
  int index = 0;
  std::string name;                         // e.g. "NVIDIA H200"
  int cc_major = 0, cc_minor = 0;           // compute capability
  int sm_count = 0;
  std::size_t total_memory_bytes = 0;
  double peak_memory_bytes_per_s = 0;       // see peak_memory_source
  std::string peak_memory_source;           // "vendor spec: ..." or the clock x bus formula
};

// Describes CUDA device `index`. Peak memory bandwidth comes from a small table of vendor
// figures matched on the device name, else 2 (DDR) x memory clock x bus width from the runtime.
// Throws std::runtime_error when the device cannot be queried (or CUDA is not compiled in).
CudaDeviceInfo cuda_device_info(int index = 0);

// Kernels with a CUDA implementation. Every one also has a CPU reference, which runs anywhere.
enum class Kernel { kMoeGating };

struct KernelSupport {
  bool supported = false;
  std::string reason;  // why not (empty when supported)
};

// Whether `kernel` can run on `device`: "cpu" (always: the reference), "cuda" (device 0) or
// "cuda:N". Anything else is reported as unsupported with the reason.
KernelSupport kernel_support(Kernel kernel, const std::string& device);

// The kernel's name ("moe_gating") and every kernel, for listings.
const char* kernel_name(Kernel kernel);
std::vector<Kernel> all_kernels();

}  // namespace audit::kernels
