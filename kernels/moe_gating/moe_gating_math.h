// Scalar math shared by the MoE gating reference (host) and kernel (device), written so both
// produce the same bits: exp is range reduction plus a Horner polynomial in explicit fused
// multiply-adds (std::fmaf / __fmaf_rn, both correctly rounded), 2^n is built from its bits, and
// every other step is a single IEEE operation that no compiler contraction can change. Library
// expf differs between glibc and CUDA by an ulp, which would flip near-tied expert choices.
// Plain C++ (no CUDA header): AUDIT_MOE_HD marks functions __host__ __device__ under nvcc.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define AUDIT_MOE_HD __host__ __device__ __forceinline__
#else
#define AUDIT_MOE_HD inline
#endif

namespace audit::kernels::moe_math {

AUDIT_MOE_HD float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

AUDIT_MOE_HD float bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// Round to nearest, ties to even (the default rounding mode on host and device).
AUDIT_MOE_HD float rint_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::rint(x);
#endif
}

// e^x within 3 ulp of the true value on [-80, 88]; 0 below (and for NaN), +inf above. The
// result is p * 2^n with p in [0.7, 1.42]: the product is exact, so fusing it into a following
// add cannot change a bit.
AUDIT_MOE_HD float exp(float x) {
  if (!(x > -80.0f)) return 0.0f;
  if (x > 88.0f) return bits_to_float(0x7f800000u);  // +inf
  const float n = rint_even(x * 1.44269504088896341f);
  // Cody-Waite split of ln 2 (Cephes): n * 0.693359375 is exact.
  float r = fma_rn(-n, 0.693359375f, x);
  r = fma_rn(-n, -2.12194440e-4f, r);
  // Taylor series of e^r to degree 7; |r| <= 0.35 leaves a truncation error under 6e-9.
  // Coefficients as decimal literals (parsed identically by both compilers): 1/7! ... 1/3!.
  float p = 1.98412698e-4f;
  p = fma_rn(p, r, 1.38888889e-3f);
  p = fma_rn(p, r, 8.33333333e-3f);
  p = fma_rn(p, r, 4.16666667e-2f);
  p = fma_rn(p, r, 1.66666667e-1f);
  p = fma_rn(p, r, 0.5f);
  p = fma_rn(p, r, 1.0f);
  p = fma_rn(p, r, 1.0f);
  const uint32_t biased = static_cast<uint32_t>(static_cast<int>(n) + 127) << 23;
  return p * bits_to_float(biased);
}

// 1 / (1 + e^-x): one add and one correctly rounded division after exp.
AUDIT_MOE_HD float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

// NaN ranks lowest: it is replaced by -inf before any comparison.
AUDIT_MOE_HD float rank_value(float v) {
  return v != v ? bits_to_float(0xff800000u) : v;  // -inf
}

// The order of candidates (value, id): larger value first, then lower id. id < 0 is "none" and
// loses to everything. Values must have gone through rank_value.
AUDIT_MOE_HD bool better(float av, int aid, float bv, int bid) {
  if (aid < 0) return false;
  if (bid < 0) return true;
  return av > bv || (av == bv && aid < bid);
}

// bf16 bits -> float (exact).
AUDIT_MOE_HD float bf16_to_float(uint16_t h) {
  return bits_to_float(static_cast<uint32_t>(h) << 16);
}

}  // namespace audit::kernels::moe_math
