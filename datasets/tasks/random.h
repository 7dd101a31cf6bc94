// Deterministic randomness for the data pipeline: a seeded std::mt19937_64 (its output sequence
// is fixed by the C++ standard) with our own uniform, real and weighted draws and Fisher-Yates
// shuffle. std::uniform_int_distribution and std::shuffle are not used: their results differ
// between standard libraries, and splits must be identical on every machine.
#pragma once

#include <cstdint>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

namespace audit::datasets {

// SplitMix64 finalizer: mixes a 64-bit value (used to derive independent stream seeds).
std::uint64_t splitmix64(std::uint64_t x);
// FNV-1a 64-bit hash of bytes (stable, used for stream names and fingerprints).
std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h = 0xcbf29ce484222325ULL);

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  // An independent stream for `name` derived from `seed` (e.g. one per split).
  static Rng stream(std::uint64_t seed, std::string_view name);

  std::uint64_t next() { return engine_(); }
  // Uniform integer in [0, n); n must be > 0. Rejection sampling, no modulo bias.
  std::uint64_t below(std::uint64_t n);
  // Uniform integer in [lo, hi] (inclusive); lo <= hi.
  std::int64_t between(std::int64_t lo, std::int64_t hi);
  // Uniform double in [0, 1) with 53 random bits.
  double real();
  // Index drawn with probability weights[i] / sum(weights); weights >= 0, sum > 0.
  std::size_t weighted(const std::vector<double>& weights);

 private:
  std::mt19937_64 engine_;
};

// In-place Fisher-Yates shuffle with Rng::below (identical on every platform).
template <class T>
void fisher_yates(std::vector<T>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    std::size_t j = static_cast<std::size_t>(rng.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

// 0..n-1 shuffled by a stream derived from (seed, epoch): the data order of one epoch.
std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed, std::uint64_t epoch);

}  // namespace audit::datasets
