// Deterministic randomness for the data pipeline (see random.h).
#include "datasets/tasks/random.h"

#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

namespace audit::datasets {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

Rng Rng::stream(std::uint64_t seed, std::string_view name) {
  return Rng(splitmix64(splitmix64(seed) ^ fnv1a64(name)));
}

std::uint64_t Rng::below(std::uint64_t n) {
  if (n == 0) throw std::invalid_argument("Rng::below: n must be > 0");
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t limit = max - (max % n + 1) % n;  // largest multiple of n, minus 1
  std::uint64_t x;
  do {
    x = engine_();
  } while (x > limit);
  return x % n;
}

std::int64_t Rng::between(std::int64_t lo, std::int64_t hi) {
  if (hi < lo) throw std::invalid_argument("Rng::between: hi < lo");
  const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
  if (span == std::numeric_limits<std::uint64_t>::max()) return static_cast<std::int64_t>(engine_());
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + below(span + 1));
}

double Rng::real() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

std::size_t Rng::weighted(const std::vector<double>& weights) {
  double total = 0;
  for (double w : weights) {
    if (!(w >= 0)) throw std::invalid_argument("Rng::weighted: negative or NaN weight");
    total += w;
  }
  if (!(total > 0)) throw std::invalid_argument("Rng::weighted: weights sum to 0");
  const double u = real() * total;
  double acc = 0;
  std::size_t last_positive = 0;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] <= 0) continue;
    acc += weights[i];
    last_positive = i;
    if (u < acc) return i;
  }
  return last_positive;  // rounding: u landed at the very top
}

std::vector<std::size_t> shuffled_indices(std::size_t n, std::uint64_t seed, std::uint64_t epoch) {
  std::vector<std::size_t> idx(n);
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  Rng rng = Rng::stream(seed, "epoch:" + std::to_string(epoch));
  fisher_yates(idx, rng);
  return idx;
}

}  // namespace audit::datasets
