// The CodeCarbon export: a run's stages as rows of CodeCarbon's emissions.csv (exports.h says
// which column holds what). Numbers are written in their shortest round-trip form; a column the
// ledger holds nothing for is empty (pandas reads NaN), never 0 standing for "unknown".
#include <cmath>
#include <ctime>
#include <map>

#include "reproduce/exports/exports.h"

namespace audit::exports {

// codecarbon 3.3.0 (github.com/mlco2/codecarbon, tag 3.3.0, commit 4dde6e30f061f9fa718fa0396b28
// 4b3c965a5aad), codecarbon/output_methods/emissions_data.py: the EmissionsData dataclass's
// fields in declaration order, which output_methods/file.py writes as the CSV header
// (pandas.DataFrame.from_records([dict(total.values)]).to_csv).
const std::vector<std::string> kCodecarbonColumns = {
    "timestamp",      "project_name",       "run_id",
    "experiment_id",  "duration",           "emissions",
    "emissions_rate", "cpu_power",          "gpu_power",
    "ram_power",      "cpu_energy",         "gpu_energy",
    "ram_energy",     "energy_consumed",    "water_consumed",
    "country_name",   "country_iso_code",   "region",
    "cloud_provider", "cloud_region",       "os",
    "python_version", "codecarbon_version", "cpu_count",
    "cpu_model",      "gpu_count",          "gpu_model",
    "longitude",      "latitude",           "ram_total_size",
    "tracking_mode",  "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud",
    "pue",            "wue"};

namespace {

std::string num(double v) { return nlohmann::json(v).dump(); }

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string utc_iso(double unix_s) {
  std::time_t t = static_cast<std::time_t>(std::floor(unix_s));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

}  // namespace

std::string export_codecarbon(const ledger::Ledger& l, int64_t run_id,
                              const CodecarbonOptions& opt) {
  auto r = l.run(run_id);
  if (!r) throw ledger::LedgerError(l.path() + ": no run " + std::to_string(run_id));
  std::string out;
  for (size_t i = 0; i < kCodecarbonColumns.size(); ++i)
    out += (i ? "," : "") + kCodecarbonColumns[i];
  out += "\n";
  const std::string run_tag = "run" + std::to_string(run_id);
  for (const auto& s : l.stages(run_id)) {
    std::map<std::string, std::string> v;
    const double end = s.ended_at > 0 ? s.ended_at : s.started_at + s.wall_s;
    v["timestamp"] = utc_iso(end);
    v["project_name"] = r->name;
    v["run_id"] = run_tag + "-" + s.name;
    v["experiment_id"] = run_tag;
    v["duration"] = num(s.wall_s);
    if (s.power_metered) {
      const double kwh = s.energy_j / 3.6e6;
      v["gpu_energy"] = num(kwh);
      v["energy_consumed"] = num(kwh);  // the metered components only: the GPUs
      if (s.wall_s > 0) v["gpu_power"] = num(s.energy_j / s.wall_s);
      if (opt.carbon_intensity_g_per_kwh >= 0) {
        const double kg = kwh * opt.carbon_intensity_g_per_kwh / 1000.0;
        v["emissions"] = num(kg);
        if (s.wall_s > 0) v["emissions_rate"] = num(kg / s.wall_s);
      }
    }
    v["gpu_count"] = num(double(s.gpu_count));
    if (s.gpu_s > 0) v["gpu_utilization_percent"] = num(100.0 * s.gpu_busy_s / s.gpu_s);
    v["tracking_mode"] = "machine";
    v["pue"] = num(1);
    v["wue"] = num(0);
    for (size_t i = 0; i < kCodecarbonColumns.size(); ++i) {
      auto it = v.find(kCodecarbonColumns[i]);
      out += (i ? "," : "") + (it == v.end() ? std::string() : csv_field(it->second));
    }
    out += "\n";
  }
  return out;
}

}  // namespace audit::exports
