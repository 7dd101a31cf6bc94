// The shipped price bands (compiled-in defaults, each with source and date) and the recipe
// override. The same table is printed in docs/cost-model.md; change both together.
#include "ledger/costs/prices.h"

#include <algorithm>
#include <stdexcept>

#include "ledger/costs/hardware.h"

namespace audit::ledger {

nlohmann::json to_json(const Band& b) { return nlohmann::json::array({b.low, b.mid, b.high}); }

nlohmann::json to_json(const PriceBand& p) {
  return {{"key", p.key},       {"unit", p.unit},     {"low", p.band.low},
          {"mid", p.band.mid},  {"high", p.band.high}, {"source", p.source},
          {"date", p.date},     {"overridden", p.overridden}};
}

std::string gpu_hour_key(const std::string& hardware_id) { return "gpu_hour." + hardware_id; }

PriceTable PriceTable::defaults() {
  namespace k = price_keys;
  PriceTable t;
  auto add = [&t](std::string key, std::string unit, Band b, std::string source, std::string date) {
    t.rows_.push_back({std::move(key), std::move(unit), b, std::move(source), std::move(date), false});
  };
  const std::string gpu_index =
      "Mercatus GPU Index, on-demand USD per GPU-hour across 22+ providers "
      "(mercatus-ai.com/blog/cloud-gpu-pricing): ";
  add(gpu_hour_key("H100-SXM"), "USD/GPU-hour", {1.99, 2.99, 5.00},
      gpu_index + "H100 SXM5 long-tail $1.99-2.50, specialty clouds $2.50-3.50 (mid: Lambda "
                  "8x H100 SXM on-demand $2.99/GPU-hour), hyperscalers $3.50-5.00",
      "2026-05");
  add(gpu_hour_key("H800-SXM"), "USD/GPU-hour", {1.50, 2.00, 3.00},
      "mid: DeepSeek-V3 Technical Report (arXiv:2412.19437) assumes $2 per H800 GPU-hour rental; "
      "H800 has no public western list price, so low/high bracket it by H100 rates (long-tail "
      "less 25%, specialty-cloud)",
      "2024-12");
  add(gpu_hour_key("H200-SXM"), "USD/GPU-hour", {2.50, 3.99, 7.00},
      gpu_index + "H200 SXM5 long-tail $2.50-3.50, specialty clouds $3.50-4.50, hyperscalers "
                  "$4.50-7.00",
      "2026-05");
  add(gpu_hour_key("A100-80GB-SXM"), "USD/GPU-hour", {0.80, 1.50, 3.00},
      gpu_index + "A100 80GB long-tail $0.80-1.10, specialty clouds $1.10-1.50, hyperscalers "
                  "$1.50-3.00",
      "2026-05");
  add(k::kCpuHour, "USD/CPU-hour", {0.01, 0.04, 0.10},
      "one busy vCPU for an hour: AWS EC2 on-demand general-purpose (m7i/c7i, us-east-1) about "
      "$0.04-0.05 per vCPU-hour; spot about 70% less; high: small managed instances",
      "2025-01");
  add(k::kTeacherOutput, "USD/1M tokens", {0.40, 2.50, 3.50},
      "Gemini API pricing (ai.google.dev/pricing): gemini-2.0-flash $0.40/1M output tokens (GA "
      "2025-02; s1's teacher, Gemini 2.0 Flash Thinking Experimental, was free during its "
      "preview), gemini-2.5-flash $2.50/1M output, gemini-2.5-flash-preview thinking output "
      "$3.50/1M (2025-04)",
      "2025-06");
  add(k::kTeacherInput, "USD/1M tokens", {0.10, 0.30, 0.50},
      "Gemini API pricing (ai.google.dev/pricing): gemini-2.0-flash $0.10, gemini-2.5-flash "
      "$0.30, gemini-3-flash $0.50 per 1M input tokens",
      "2025-06");
  add(k::kFrontierOutput, "USD/1M tokens", {10.0, 15.0, 60.0},
      "frontier judge/teacher output tokens: GPT-4o $10/1M (OpenAI pricing 2024-10), Claude 3.5/"
      "3.7 Sonnet $15/1M (Anthropic pricing 2025-02), o1 $60/1M (OpenAI pricing 2024-12)",
      "2025-02");
  add(k::kFrontierInput, "USD/1M tokens", {2.50, 3.00, 15.0},
      "frontier input tokens: GPT-4o $2.50/1M, Claude 3.5/3.7 Sonnet $3/1M, o1 $15/1M "
      "(OpenAI and Anthropic pricing pages)",
      "2025-02");
  add(k::kKwh, "USD/kWh", {0.05, 0.08, 0.20},
      "mid: US EIA Electric Power Monthly, average US industrial retail price about 8 cents/kWh "
      "(2024); low: data-centre power purchase agreements in low-cost US regions; high: EU "
      "non-household prices (Eurostat, about EUR 0.19/kWh in 2024)",
      "2025-02");
  add(k::kPue, "ratio", {1.10, 1.30, 1.60},
      "low: Google fleet-wide trailing PUE 1.09 (2024 environmental report); high: Uptime "
      "Institute Global Data Center Survey 2024 average PUE 1.56",
      "2024-07");
  add(k::kCo2PerKwh, "kg CO2e/kWh", {0.05, 0.37, 0.70},
      "mid: US EIA, US electricity generation emitted about 0.81 lb (0.37 kg) CO2 per kWh "
      "(2023); low: hydro/nuclear-heavy grids; high: coal-heavy grids (IEA)",
      "2024-12");
  add(k::kExpertHour, "USD/hour", {40.0, 100.0, 200.0},
      "estimate: US BLS OES May 2023 median wage of mathematicians about $56/hour before "
      "overhead; contracted PhD-level data-annotation rates are commonly quoted at $50-200/hour",
      "2024-04");
  add(k::kBaseMfu, "fraction of bf16 peak", {0.30, 0.40, 0.50},
      "published large-scale pretraining utilization: Llama 3 405B 38-43% of bf16 peak on 16K "
      "H100 (The Llama 3 Herd of Models, 2024-07); PaLM 540B 46.2% MFU (2022); DeepSeek-V3's "
      "stated hours imply about 34% by 6*N*D (audit estimate)",
      "2024-07");
  return t;
}

std::optional<PriceBand> PriceTable::find(const std::string& key) const {
  for (const auto& r : rows_) {
    if (r.key == key) return r;
  }
  return std::nullopt;
}

std::vector<std::string> PriceTable::keys() const {
  std::vector<std::string> out;
  for (const auto& r : rows_) out.push_back(r.key);
  return out;
}

const PriceBand& PriceTable::get(const std::string& key) const {
  for (const auto& r : rows_) {
    if (r.key == key) return r;
  }
  std::string known;
  for (const auto& r : rows_) known += (known.empty() ? "" : ", ") + r.key;
  throw std::out_of_range("no price band '" + key + "' (known: " + known + ")");
}

void PriceTable::set(const std::string& key, const Band& band, const std::string& source,
                     const std::string& date, const std::string& unit) {
  auto it = std::find_if(rows_.begin(), rows_.end(), [&](const PriceBand& r) { return r.key == key; });
  const std::string gpu_prefix = "gpu_hour.";
  bool gpu_key = key.rfind(gpu_prefix, 0) == 0;
  if (it == rows_.end()) {
    bool known_gpu = false;
    if (gpu_key) {
      auto hw = find_hardware(key.substr(gpu_prefix.size()));
      known_gpu = hw && hw->kind == "gpu" && hw->id == key.substr(gpu_prefix.size());
    }
    if (!known_gpu) {
      std::string known;
      for (const auto& r : rows_) known += (known.empty() ? "" : ", ") + r.key;
      throw std::invalid_argument("unknown price key '" + key + "' (known: " + known + ")");
    }
  }
  if (!band.ordered())
    throw std::invalid_argument("price band '" + key + "' must satisfy low <= mid <= high");
  if (band.low < 0) throw std::invalid_argument("price band '" + key + "' must not be negative");
  if (key == price_keys::kPue && band.low < 1.0)
    throw std::invalid_argument("PUE band must be >= 1");
  if (key == price_keys::kBaseMfu && (band.low <= 0 || band.high > 1.0))
    throw std::invalid_argument("MFU band must lie in (0, 1]");
  if (it == rows_.end()) {
    rows_.push_back({key, unit.empty() ? "USD/GPU-hour" : unit, band, source, date, true});
    return;
  }
  it->band = band;
  it->source = source.empty() ? "recipe [prices] override (no source given)" : source;
  it->date = date;
  if (!unit.empty()) it->unit = unit;
  it->overridden = true;
}

nlohmann::json PriceTable::to_json() const {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : rows_) j.push_back(ledger::to_json(r));
  return j;
}

}  // namespace audit::ledger
