// lm-eval results JSON, read and written (lm_eval.h gives the lm-eval source this follows).
#include "suites/lm_eval/lm_eval.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/errors.h"
#include "suites/stats/wilson.h"

namespace audit::lm_eval {
namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

bool is_results_name(const std::string& name) {
  return name.rfind("results_", 0) == 0 && name.size() > 13 &&
         name.compare(name.size() - 5, 5, ".json") == 0;
}

// The value of a stderr entry: a number, or absent / "N/A" (lm-eval writes "N/A" when it could
// not bootstrap one).
template <class J>
bool stderr_value(const J& task, const std::string& key, double& out) {
  auto it = task.find(key);
  if (it == task.end() || !it->is_number()) return false;
  out = it->template get<double>();
  return true;
}

}  // namespace

std::string sanitize_model_name(const std::string& name) {
  static const std::string bad = "\"<>:/|\\?*[]";
  std::string out;
  for (size_t i = 0; i < name.size();) {
    if (bad.find(name[i]) == std::string::npos) {
      out += name[i++];
      continue;
    }
    while (i < name.size() && bad.find(name[i]) != std::string::npos) ++i;
    out += "__";
  }
  return out;
}

std::string find_lm_eval_results_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw InputError(path, 0, 0, "", "no such lm-eval results file or --output_path folder");
  if (!fs::is_directory(path, ec)) return path;
  // lm-eval writes <output_path>/<model_name_sanitized>/results_<date>.json; look in the folder
  // itself too (a model folder given directly). The date is ISO 8601 with '-' for ':', so the
  // newest sorts last as text; ties between folders go to the later path.
  std::string best, best_name;
  auto consider = [&](const fs::path& p) {
    const std::string name = p.filename().string();
    if (!is_results_name(name)) return;
    if (best.empty() || name > best_name || (name == best_name && p.string() > best)) {
      best = p.string();
      best_name = name;
    }
  };
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (e.is_regular_file(ec)) consider(e.path());
    else if (e.is_directory(ec))
      for (const auto& f : fs::directory_iterator(e.path(), ec))
        if (f.is_regular_file(ec)) consider(f.path());
  }
  if (best.empty())
    throw InputError(path, 0, 0, "",
                     "no results_*.json here or one folder down (lm-eval writes "
                     "<output_path>/<model_name_sanitized>/results_<date>.json)");
  return best;
}

namespace {

template <class J>
std::vector<LmEvalResult> parse_results(const J& j, const std::string& file) {
  if (!j.is_object()) throw InputError(file, 0, 0, "", "an lm-eval results file is a JSON object");
  auto res = j.find("results");
  if (res == j.end() || !res->is_object())
    throw InputError(file, 0, 0, "results",
                     "missing or not an object (not an lm-eval results file?)");
  LmEvalResult base;
  base.file = file;
  auto text = [&](const J& o, const char* k, const std::string& where) -> std::string {
    auto it = o.find(k);
    if (it == o.end() || it->is_null()) return "";
    if (!it->is_string()) throw InputError(file, 0, 0, where + k, "not a string");
    return it->template get<std::string>();
  };
  base.lm_eval_version = text(j, "lm_eval_version", "");
  base.model_name = text(j, "model_name", "");
  if (auto c = j.find("config"); c != j.end() && !c->is_null()) {
    if (!c->is_object()) throw InputError(file, 0, 0, "config", "not an object");
    base.model = text(*c, "model", "config.");
    if (auto a = c->find("model_args"); a != c->end() && !a->is_null())
      base.model_args = a->is_string() ? a->template get<std::string>() : a->dump();
  }
  const J* ns = nullptr;
  if (auto it = j.find("n-samples"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) throw InputError(file, 0, 0, "n-samples", "not an object");
    ns = &*it;
  }

  std::vector<LmEvalResult> out;
  for (const auto& [task, metrics] : res->items()) {
    const std::string where = "results." + task;
    if (!metrics.is_object()) throw InputError(file, 0, 0, where, "not an object");
    LmEvalResult row = base;
    row.task = task;
    if (ns) {
      if (auto t = ns->find(task); t != ns->end()) {
        const std::string nw = "n-samples." + task;
        if (!t->is_object()) throw InputError(file, 0, 0, nw, "not an object");
        for (auto [k, dst] : {std::pair<const char*, int64_t*>{"effective", &row.n},
                              {"original", &row.n_original}}) {
          auto v = t->find(k);
          if (v == t->end()) continue;
          if (!v->is_number_integer() || v->template get<int64_t>() < 0)
            throw InputError(file, 0, 0, nw + "." + k, "not a count (a whole number >= 0)");
          *dst = v->template get<int64_t>();
        }
      }
    }
    for (const auto& [key, value] : metrics.items()) {
      const auto comma = key.find(',');
      const std::string name = key.substr(0, comma);
      // "alias", "name", "sample_len", "sample_count" and the stderr entries are not metrics.
      if (comma == std::string::npos) continue;
      if (name.size() >= 7 && name.compare(name.size() - 7, 7, "_stderr") == 0) continue;
      if (value.is_string() && value.template get<std::string>() == "N/A") continue;  // not computed
      if (!value.is_number())
        throw InputError(file, 0, 0, where + "." + key, "metric value is not a number");
      LmEvalResult r = row;
      r.metric = key;
      r.metric_name = name;
      r.filter = key.substr(comma + 1);
      r.value = value.template get<double>();
      r.has_stderr = stderr_value(metrics, name + "_stderr," + r.filter, r.stderr_);
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace

std::vector<LmEvalResult> parse_lm_eval_results(const ordered_json& j, const std::string& file) {
  return parse_results(j, file);
}
std::vector<LmEvalResult> parse_lm_eval_results(const json& j, const std::string& file) {
  return parse_results(j, file);
}

std::vector<LmEvalResult> read_lm_eval_results(const std::string& path) {
  const std::string file = find_lm_eval_results_file(path);
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError(file, 0, 0, "", "cannot open for reading");
  std::stringstream ss;
  ss << in.rdbuf();
  ordered_json j;
  try {
    j = ordered_json::parse(ss.str());
  } catch (const ordered_json::parse_error& e) {
    throw InputError(file, 0, 0, "", std::string("not JSON: ") + e.what());
  }
  return parse_lm_eval_results(j, file);
}

std::vector<LmEvalResult> select_metric(const std::vector<LmEvalResult>& rows,
                                        const std::string& metric) {
  std::vector<LmEvalResult> out;
  for (const auto& r : rows)
    if (r.metric == metric) out.push_back(r);
  return out;
}

std::vector<ledger::EvalResult> to_eval_results(const std::vector<LmEvalResult>& rows,
                                                const EvalRowOptions& opt) {
  std::vector<ledger::EvalResult> out;
  for (const auto& r : rows) {
    const std::string key = "results." + r.task + "." + r.metric;
    if (r.n < 1)
      throw InputError(r.file, 0, 0, key,
                       "no sample count (\"n-samples\".\"" + r.task +
                           "\".\"effective\"): an accuracy needs its n");
    if (!(r.value >= 0 && r.value <= 1))
      throw InputError(r.file, 0, 0, key,
                       "value " + std::to_string(r.value) +
                           " is not an accuracy in [0, 1]; choose accuracy metrics");
    ledger::EvalResult e;
    e.model = !opt.model.empty() ? opt.model : !r.model_name.empty() ? r.model_name : r.model;
    e.suite = r.task;
    e.split = opt.split.empty() ? r.filter : opt.split;
    e.ood = opt.ood;
    e.seed = opt.seed;
    e.budget = opt.budget;
    e.n = r.n;
    e.score = r.value;
    e.correct = std::llround(r.value * double(r.n));
    const auto ci = stats::wilson(e.correct, e.n);
    e.ci_low = ci.low;
    e.ci_high = ci.high;
    out.push_back(std::move(e));
  }
  return out;
}

ordered_json write_lm_eval_results(const std::vector<ledger::EvalResult>& rows,
                                   const WriteOptions& opt) {
  std::map<std::string, int> per_suite_split;
  for (const auto& e : rows) ++per_suite_split[e.suite + "_" + e.split];
  ordered_json results = ordered_json::object(), nsamples = ordered_json::object(),
               configs = ordered_json::object(), versions = ordered_json::object(),
               nshot = ordered_json::object(), hib = ordered_json::object();
  for (const auto& e : rows) {
    std::string task = e.suite + "_" + e.split;
    if (per_suite_split[task] > 1) {
      task += "_seed" + std::to_string(e.seed);
      task += "_budget" + (e.budget < 0 ? std::string("unlimited") : std::to_string(e.budget));
    }
    // Rows that still collide (same suite, split, seed and budget) keep their ledger row id.
    if (results.contains(task)) task += "_row" + std::to_string(e.id);
    const double p = e.score;
    ordered_json m = {{"alias", task}, {"acc,none", p}};
    if (e.n > 1) m["acc_stderr,none"] = std::sqrt(p * (1 - p) / double(e.n - 1));
    else m["acc_stderr,none"] = "N/A";
    results[task] = m;
    nsamples[task] = {{"original", e.n}, {"effective", e.n}};
    configs[task] = {{"task", task},
                     {"output_type", "generate_until"},
                     {"metadata",
                      {{"source", "audit ledger eval row"},
                       {"eval_id", e.id},
                       {"model", e.model},
                       {"suite", e.suite},
                       {"split", e.split},
                       {"ood", e.ood},
                       {"seed", e.seed},
                       {"budget", e.budget},
                       {"n", e.n},
                       {"correct", e.correct},
                       {"ci_low", e.ci_low},
                       {"ci_high", e.ci_high},
                       {"interval", "Wilson 95%"}}}};
    versions[task] = 0;
    nshot[task] = 0;
    hib[task] = {{"acc", true}};
  }
  return ordered_json{{"results", results},
          {"configs", configs},
          {"versions", versions},
          {"n-shot", nshot},
          {"higher_is_better", hib},
          {"n-samples", nsamples},
          {"config", {{"model", opt.model}, {"model_args", opt.model_args}}},
          {"git_hash", opt.git_hash},
          {"date", opt.date},
          {"model_name", opt.model},
          {"model_name_sanitized", sanitize_model_name(opt.model)},
          {"audit_version", opt.audit_version}};
}

}  // namespace audit::lm_eval
