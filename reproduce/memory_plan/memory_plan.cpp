// The memory plan (see memory_plan.h).
#include "reproduce/memory_plan/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/format.h"
#include "ledger/costs/cost_model.h"
#include "reproduce/estimate/estimate.h"

namespace audit::plan {
namespace {

std::string bytes_text(double b) { return text::bytes(b); }

int64_t read_int_file(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max") return -1;
  try {
    return std::stoll(s);
  } catch (...) {
    return -1;
  }
}

}  // namespace

MemoryPlan plan_memory(const MemoryInputs& in) {
  MemoryPlan p;
  const auto& m = in.model;
  p.parameters = ledger::count_parameters(reproduce::arch_from_settings(m)).total;
  const double P = double(p.parameters);
  const double B = double(std::max<int64_t>(1, in.micro_batch));
  const double T = double(std::max<int64_t>(1, in.longest_tokens));
  const double act_bytes = in.bf16 ? 2.0 : 4.0;
  const double h = double(m.hidden), f = double(m.ffn), qd = double(m.heads * m.head_dim),
               kvd = double(m.kv_heads * m.head_dim), L = double(m.layers), V = double(m.vocab);
  char buf[512];
  auto add = [&](const std::string& key, const std::string& label, double bytes,
                 const std::string& formula) { p.lines.push_back({key, label, bytes, formula}); };
  std::snprintf(buf, sizeof buf, "4 B x %s parameters (fp32)", text::num(P).c_str());
  add("weights", "weights", 4 * P, buf);
  std::snprintf(buf, sizeof buf, "(4 B .grad + 4 B flat buffer while gathered) x %s parameters",
                text::num(P).c_str());
  add("gradients", "gradients", 8 * P, buf);
  std::snprintf(buf, sizeof buf, "AdamW exp_avg + exp_avg_sq: 8 B x %s parameters",
                text::num(P).c_str());
  add("optimizer", "optimizer states", 8 * P, buf);
  // Per token and layer, the tensors the decoder layer keeps for backward.
  const double per_layer = 4 * h + 3 * qd + 2 * kvd + 4 * f;
  const double layer_set = B * T * per_layer * act_bytes;
  double act;
  if (in.recompute) {
    act = L * B * T * h * act_bytes + layer_set;
    std::snprintf(buf, sizeof buf,
                  "recompute: %g layers x %g x %g tokens x hidden %g x %g B + one layer's set "
                  "(%g values per token x %g B); attention O(T)",
                  L, B, T, h, act_bytes, per_layer, act_bytes);
  } else {
    act = L * layer_set;
    std::snprintf(buf, sizeof buf,
                  "%g layers x %g x %g tokens x %g values per token (4 hidden + 3 q + 2 kv + 4 ffn) "
                  "x %g B; attention O(T)",
                  L, B, T, per_layer, act_bytes);
  }
  add("activations", "activations (longest sample)", act, buf);
  std::snprintf(buf, sizeof buf, "%g x %g tokens x vocab %g x 3 (logits, log-softmax, gradient) x 4 B",
                B, T, V);
  add("logits", "logits and their gradient", B * T * V * 3 * 4, buf);
  for (const auto& l : p.lines) p.total_bytes += l.bytes;
  add("total", "total", p.total_bytes, "sum of the above");
  p.device_bytes = in.device_bytes;
  p.fits = in.device_bytes <= 0 || p.total_bytes <= double(in.device_bytes);
  return p;
}

std::string MemoryPlan::to_text() const {
  std::ostringstream o;
  for (const auto& l : lines)
    o << "  " << l.label << std::string(l.label.size() < 30 ? 30 - l.label.size() : 1, ' ')
      << bytes_text(l.bytes) << "   " << l.formula << "\n";
  if (device_bytes > 0)
    o << "  available" << std::string(21, ' ') << bytes_text(double(device_bytes))
      << (fits ? "   fits" : "   DOES NOT FIT") << "\n";
  return o.str();
}

nlohmann::json MemoryPlan::to_json() const {
  nlohmann::json j;
  j["parameters"] = parameters;
  j["total_bytes"] = total_bytes;
  j["device_bytes"] = device_bytes;
  j["fits"] = fits;
  j["lines"] = nlohmann::json::array();
  for (const auto& l : lines)
    j["lines"].push_back({{"key", l.key}, {"label", l.label}, {"bytes", l.bytes}, {"formula", l.formula}});
  j["provenance"] = "estimated";
  return j;
}

int64_t cpu_available_bytes(std::string* source) {
  int64_t avail = -1;
  std::ifstream mi("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (mi >> key >> kb) {
    std::getline(mi, unit);
    if (key == "MemAvailable:") {
      avail = kb * 1024;
      break;
    }
  }
  std::string src = avail >= 0 ? "/proc/meminfo MemAvailable" : "unknown";
  const int64_t max = read_int_file("/sys/fs/cgroup/memory.max");
  const int64_t cur = read_int_file("/sys/fs/cgroup/memory.current");
  if (max > 0 && cur >= 0 && (avail < 0 || max - cur < avail)) {
    avail = std::max<int64_t>(0, max - cur);
    src = "cgroup v2 memory.max - memory.current";
  }
  if (source) *source = src;
  return std::max<int64_t>(0, avail);
}

}  // namespace audit::plan
