// Price bands of the cost model: low / mid / high USD per GPU-hour (per GPU type), per CPU
// core-hour, per 1M API tokens (a teacher band and a frontier band), per kWh and per expert hour,
// plus the factors priced with them (PUE, grid CO2 intensity, the MFU band used to estimate a
// base model's pretraining). Every band carries its source and date. The compiled-in defaults
// are documented in docs/cost-model.md; a recipe's [prices] overrides them (PriceTable::set).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace audit::ledger {

// Three figures, low <= mid <= high.
struct Band {
  double low = 0, mid = 0, high = 0;
  Band() = default;
  Band(double l, double m, double h) : low(l), mid(m), high(h) {}
  static Band point(double v) { return Band(v, v, v); }
  Band operator*(const Band& o) const { return {low * o.low, mid * o.mid, high * o.high}; }
  Band operator*(double k) const { return {low * k, mid * k, high * k}; }
  Band operator+(const Band& o) const { return {low + o.low, mid + o.mid, high + o.high}; }
  bool ordered() const { return low <= mid && mid <= high; }
};
nlohmann::json to_json(const Band& b);  // [low, mid, high]

struct PriceBand {
  std::string key;     // e.g. "gpu_hour.H100-SXM"
  std::string unit;    // e.g. "USD/GPU-hour", "USD/1M tokens", "ratio", "kg CO2e/kWh"
  Band band;
  std::string source;  // where the numbers come from
  std::string date;    // when the source stated them (YYYY-MM or YYYY-MM-DD)
  bool overridden = false;  // true when a recipe replaced the shipped default
};
nlohmann::json to_json(const PriceBand& p);

// Keys of the shipped table.
namespace price_keys {
inline constexpr const char* kCpuHour = "cpu_hour";                 // USD per CPU core-hour
inline constexpr const char* kTeacherOutput = "api.teacher.output"; // USD / 1M output tokens
inline constexpr const char* kTeacherInput = "api.teacher.input";   // USD / 1M input tokens
inline constexpr const char* kFrontierOutput = "api.frontier.output";
inline constexpr const char* kFrontierInput = "api.frontier.input";
inline constexpr const char* kKwh = "kwh";                          // USD per kWh
inline constexpr const char* kPue = "pue";                          // ratio >= 1
inline constexpr const char* kCo2PerKwh = "co2_kg_per_kwh";         // kg CO2e per kWh
inline constexpr const char* kExpertHour = "expert_hour";           // USD per hour
inline constexpr const char* kBaseMfu = "mfu.base";                 // fraction of bf16 peak
}  // namespace price_keys

// "gpu_hour." + hardware id (ledger/costs/hardware.h), e.g. gpu_hour_key("H100-SXM").
std::string gpu_hour_key(const std::string& hardware_id);

class PriceTable {
 public:
  // The compiled-in defaults (sources and dates in each row and in docs/cost-model.md).
  static PriceTable defaults();

  // The band for key; throws std::out_of_range naming the key and the known keys.
  const PriceBand& get(const std::string& key) const;
  std::optional<PriceBand> find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key).has_value(); }

  // Replaces a band (marks it overridden, keeps the shipped unit when unit is empty). Throws
  // std::invalid_argument when the key is not a known key or a gpu_hour.<id>, when the band is
  // not low <= mid <= high, or when a value is negative (PUE must be >= 1, MFU in (0, 1]).
  void set(const std::string& key, const Band& band, const std::string& source,
           const std::string& date = "", const std::string& unit = "");

  const std::vector<PriceBand>& all() const { return rows_; }
  std::vector<std::string> keys() const;
  nlohmann::json to_json() const;

 private:
  std::vector<PriceBand> rows_;
};

}  // namespace audit::ledger
