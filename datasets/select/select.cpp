// s1-style quality, difficulty and diversity selection with per-filter counts (see select.h).
#include "datasets/select/select.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "datasets/tasks/random.h"
#include "datasets/tasks/splits.h"
#include "datasets/tokenizer/tokenizer.h"

namespace audit::datasets {

void to_json(nlohmann::json& j, const BucketCounts& c) {
  j = nlohmann::json{{"pool", c.pool},
                     {"after_quality", c.after_quality},
                     {"after_difficulty", c.after_difficulty},
                     {"selected", c.selected}};
}

void to_json(nlohmann::json& j, const SelectionCounts& c) {
  j = nlohmann::json{{"pool", c.pool},
                     {"after_quality", c.after_quality},
                     {"after_difficulty", c.after_difficulty},
                     {"selected", c.selected},
                     {"base_correct", c.base_correct},
                     {"quality_rejects", c.quality_rejects},
                     {"per_bucket", c.per_bucket}};
}

std::string quality_reject_reason(const Example& e, bool require_solver_match) {
  if (trim(e.question).empty()) return "empty_question";
  if (trim(e.trace).empty()) return "empty_trace";
  if (trim(e.answer).empty()) return "empty_answer";
  for (const auto& m : ByteTokenizer::special_names())
    if (e.question.find(m) != std::string::npos || e.trace.find(m) != std::string::npos ||
        e.answer.find(m) != std::string::npos)
      return "template_marker";
  if (e.op == "user") return "";
  auto p = parse_question(e.question);
  if (!p) return "unparseable_question";
  const TraceCheck tc = check_trace(e.question, e.trace);
  if (!tc.well_formed) return "malformed_trace";
  if (!tc.arithmetic_ok) return "arithmetic_error";
  if (require_solver_match && !tc.matches_solver) return "differs_from_solver";
  if (trim(e.answer) != tc.final_result || trim(e.answer) != solve(*p).answer)
    return "answer_mismatch";
  return "";
}

std::vector<std::size_t> quality_survivors(const std::vector<Example>& pool,
                                           bool require_solver_match) {
  std::vector<std::size_t> v;
  for (std::size_t i = 0; i < pool.size(); ++i)
    if (quality_reject_reason(pool[i], require_solver_match).empty()) v.push_back(i);
  return v;
}

std::vector<std::size_t> diversity_sample(const std::vector<Example>& pool,
                                          const std::vector<std::size_t>& candidates,
                                          std::size_t n, std::uint64_t seed) {
  // Buckets in name order, each sorted longest trace first (index breaks ties): deterministic.
  std::map<std::string, std::vector<std::size_t>> buckets;
  for (std::size_t i : candidates) buckets[bucket_of(pool.at(i))].push_back(i);
  std::vector<std::vector<std::size_t>> open;
  for (auto& [name, v] : buckets) {
    std::stable_sort(v.begin(), v.end(), [&](std::size_t a, std::size_t b) {
      return pool[a].trace.size() != pool[b].trace.size() ? pool[a].trace.size() > pool[b].trace.size()
                                                          : a < b;
    });
    open.push_back(std::move(v));
  }
  Rng rng = Rng::stream(seed, "select:diversity");
  std::vector<std::size_t> out;
  std::vector<double> w;
  while (out.size() < n && !open.empty()) {
    const std::size_t b = static_cast<std::size_t>(rng.below(open.size()));
    auto& v = open[b];
    w.resize(v.size());
    for (std::size_t r = 0; r < v.size(); ++r) w[r] = std::ldexp(1.0, -static_cast<int>(std::min<std::size_t>(r, 2000)));
    const std::size_t k = rng.weighted(w);
    out.push_back(v[k]);
    v.erase(v.begin() + static_cast<std::ptrdiff_t>(k));
    if (v.empty()) open.erase(open.begin() + static_cast<std::ptrdiff_t>(b));
  }
  return out;
}

namespace {
Selection select_impl(const std::vector<Example>& pool,
                      const std::function<bool(std::size_t)>& base_correct,
                      const SelectionConfig& cfg) {
  Selection s;
  auto& c = s.counts;
  c.pool = pool.size();
  for (const auto& e : pool) ++c.per_bucket[bucket_of(e)].pool;

  std::vector<std::size_t> kept;
  for (std::size_t i = 0; i < pool.size(); ++i) {
    if (cfg.quality) {
      const std::string why = quality_reject_reason(pool[i], cfg.require_solver_match);
      if (!why.empty()) {
        ++c.quality_rejects[why];
        continue;
      }
    }
    kept.push_back(i);
    ++c.per_bucket[bucket_of(pool[i])].after_quality;
  }
  c.after_quality = kept.size();

  if (cfg.difficulty) {
    std::vector<std::size_t> hard;
    for (std::size_t i : kept) {
      if (base_correct(i)) {
        ++c.base_correct;
        continue;
      }
      hard.push_back(i);
    }
    kept.swap(hard);
  }
  for (std::size_t i : kept) ++c.per_bucket[bucket_of(pool[i])].after_difficulty;
  c.after_difficulty = kept.size();

  if (cfg.diversity) {
    s.indices = diversity_sample(pool, kept, cfg.n, cfg.seed);
  } else {
    Rng rng = Rng::stream(cfg.seed, "select:uniform");
    fisher_yates(kept, rng);
    kept.resize(std::min(kept.size(), cfg.n));
    s.indices = kept;
  }
  for (std::size_t i : s.indices) {
    s.examples.push_back(pool[i]);
    ++c.per_bucket[bucket_of(pool[i])].selected;
  }
  c.selected = s.indices.size();
  return s;
}
}  // namespace

Selection select_s1(const std::vector<Example>& pool,
                    const std::function<bool(const Example&)>& base_correct,
                    const SelectionConfig& cfg) {
  if (cfg.difficulty && !base_correct)
    throw std::invalid_argument("select_s1: the difficulty filter needs base_correct");
  return select_impl(pool, [&](std::size_t i) { return base_correct(pool[i]); }, cfg);
}

Selection select_s1(const std::vector<Example>& pool, const std::vector<bool>& base_correct,
                    const SelectionConfig& cfg) {
  if (cfg.difficulty && base_correct.size() != pool.size())
    throw std::invalid_argument("select_s1: " + std::to_string(base_correct.size()) +
                                " base-correct flags for a pool of " + std::to_string(pool.size()));
  return select_impl(pool, [&](std::size_t i) { return static_cast<bool>(base_correct[i]); }, cfg);
}

}  // namespace audit::datasets
