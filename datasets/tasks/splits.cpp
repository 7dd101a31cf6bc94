// Seeded, disjoint ID/OOD splits and pretraining data of the s1 miniature (see splits.h).
#include "datasets/tasks/splits.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace audit::datasets {

void SplitConfig::validate() const {
  auto bad = [](const std::string& field, const std::string& why) {
    throw std::invalid_argument("split config '" + field + "': " + why);
  };
  if (train_ops.empty()) bad("train_ops", "needs at least one op");
  for (const auto& op : train_ops)
    if (!is_task_op(op)) bad("train_ops", "unknown op '" + op + "'");
  for (const auto& op : heldout_ops) {
    if (!is_task_op(op)) bad("heldout_ops", "unknown op '" + op + "'");
    if (std::find(train_ops.begin(), train_ops.end(), op) != train_ops.end())
      bad("heldout_ops", "op '" + op + "' is also a train op");
  }
  if (min_digits < 1) bad("min_digits", "must be >= 1");
  if (max_digits < min_digits) bad("max_digits", "must be >= min_digits");
  if (long_min() <= max_digits) bad("long_min_digits", "must be > max_digits");
  if (long_max() < long_min()) bad("long_max_digits", "must be >= long_min_digits");
  if (long_max() > 60) bad("long_max_digits", "must be <= 60");
  if (!is_task_format(train_format)) bad("train_format", "unknown format '" + train_format + "'");
  if (!ood_format.empty() && !is_task_format(ood_format))
    bad("ood_format", "unknown format '" + ood_format + "'");
  if (ood_format == train_format) bad("ood_format", "must differ from train_format");
  if (!(pretrain_ood_format_fraction >= 0 && pretrain_ood_format_fraction <= 1))
    bad("pretrain_ood_format_fraction", "must be in [0, 1]");
  if (!(pretrain_skills_fraction >= 0 && pretrain_skills_fraction <= 1))
    bad("pretrain_skills_fraction", "must be in [0, 1]");
  if (id_test_size == 0) bad("id_test_size", "must be > 0");
  if (ood_test_size == 0) bad("ood_test_size", "must be > 0");
  for (const auto& ops : {train_ops, heldout_ops}) {
    if (ops.empty()) continue;
    bool any = false;
    for (const auto& op : ops)
      for (int d = min_digits; d <= max_digits; ++d) any = any || op_supports_digits(op, d);
    if (!any) bad("min_digits", "no op of the list can have digits in [min_digits, max_digits]");
  }
}

void to_json(nlohmann::json& j, const SplitConfig& c) {
  j = nlohmann::json{{"seed", c.seed},
                     {"train_ops", c.train_ops},
                     {"heldout_ops", c.heldout_ops},
                     {"min_digits", c.min_digits},
                     {"max_digits", c.max_digits},
                     {"long_min_digits", c.long_min()},
                     {"long_max_digits", c.long_max()},
                     {"train_format", c.train_format},
                     {"ood_format", c.ood_format},
                     {"pool_size", c.pool_size},
                     {"id_test_size", c.id_test_size},
                     {"ood_test_size", c.ood_test_size},
                     {"pretrain_size", c.pretrain_size},
                     {"pretrain_skills_fraction", c.pretrain_skills_fraction},
                     {"pretrain_ood_format_fraction", c.pretrain_ood_format_fraction}};
}

std::vector<std::pair<std::string, const std::vector<Example>*>> Splits::test_sets() const {
  std::vector<std::pair<std::string, const std::vector<Example>*>> v = {{"id_test", &id_test},
                                                                        {"ood_long", &ood_long}};
  if (!config.heldout_ops.empty()) v.emplace_back("ood_heldout", &ood_heldout);
  if (!config.ood_format.empty()) v.emplace_back("ood_format", &ood_format);
  return v;
}

std::vector<std::pair<std::string, const std::vector<Example>*>> Splits::all() const {
  auto v = test_sets();
  v.emplace_back("pool", &pool);
  v.emplace_back("pretrain", &pretrain);
  return v;
}

std::string bucket_of(const Example& e) { return e.op + ":" + std::to_string(e.digits); }

namespace {
// A bucket gives up after this many draws in a row that hit already-used problems: its digit
// space is (nearly) exhausted, and the split's remaining items go to the other buckets.
constexpr int kMaxConsecutiveCollisions = 400;
// One-digit facts per "facts" pretraining document.
constexpr int kFactsPerDocument = 4;

struct Bucket {
  std::string op;
  int digits;
};

std::vector<Bucket> buckets_for(const std::vector<std::string>& ops, int lo, int hi) {
  std::vector<Bucket> b;
  for (const auto& op : ops)
    for (int d = lo; d <= hi; ++d)
      if (op_supports_digits(op, d)) b.push_back({op, d});
  return b;
}

// A one-digit fact of the kind a column step uses, in the solver's trace notation (see
// datasets/tasks/tasks.cpp): "7+8+1" (add), "13-6-1" (sub: minuend digit plus a borrowed ten),
// "7*6+3" (mul: digit times multiplier plus carry). Returns the expression and its value.
std::pair<std::string, int> digit_fact(const std::string& op, Rng& rng) {
  const auto d = [&](int lo, int hi) { return lo + static_cast<int>(rng.below(hi - lo + 1)); };
  const bool mul = op.rfind("mul", 0) == 0;
  const bool sub = op == "sub" || (op == "addsub" && rng.below(2) == 1);
  if (mul) {
    int a = d(0, 9), m = d(2, 9), c = d(0, m - 1);  // a column carry is below m
    return {std::to_string(a) + "*" + std::to_string(m) + "+" + std::to_string(c), a * m + c};
  }
  if (sub) {
    int b = d(0, 9), borrow = d(0, 1), v = d(0, 9);
    int x = v + b + borrow;  // 0..19: the minuend digit, plus ten when it borrowed
    return {std::to_string(x) + "-" + std::to_string(b) + "-" + std::to_string(borrow), v};
  }
  int a = d(0, 9), b = d(0, 9), c = d(0, 1);
  return {std::to_string(a) + "+" + std::to_string(b) + "+" + std::to_string(c), a + b + c};
}

class Drawer {
 public:
  Drawer(std::uint64_t seed, std::vector<std::string>& warnings)
      : seed_(seed), warnings_(warnings) {}

  // n examples from `buckets` (uniform over the buckets still open), each in `format`, or in
  // `alt_format` with probability alt_fraction. Problems already drawn by any split are skipped.
  std::vector<Example> draw(const std::string& name, std::size_t n,
                            const std::vector<Bucket>& buckets, bool with_trace,
                            const std::string& format, const std::string& alt_format = "",
                            double alt_fraction = 0) {
    Rng rng = Rng::stream(seed_, "split:" + name);
    std::vector<std::size_t> open(buckets.size());
    for (std::size_t i = 0; i < open.size(); ++i) open[i] = i;
    std::vector<int> misses(buckets.size(), 0);
    std::vector<Example> out;
    out.reserve(n);
    while (out.size() < n && !open.empty()) {
      const std::size_t k = static_cast<std::size_t>(rng.below(open.size()));
      const Bucket& b = buckets[open[k]];
      const bool alt = alt_fraction > 0 && rng.real() < alt_fraction;
      Problem p = random_problem(b.op, b.digits, alt ? alt_format : format, rng);
      if (used_.insert(p.key()).second) {
        out.push_back(make_example(p, with_trace));
        misses[open[k]] = 0;
      } else if (++misses[open[k]] >= kMaxConsecutiveCollisions) {
        open.erase(open.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
    if (out.size() < n)
      warnings_.push_back(name + ": " + std::to_string(out.size()) + " of " + std::to_string(n) +
                          " examples (the digit range has too few distinct problems left)");
    return out;
  }

  // n number-handling examples (direct answers, no traces): copies of a problem's standard
  // notation, digit reversals of one operand, and tables of one-digit facts of the problem's
  // op. Their problems are drawn like any split's and marked used, so no test or pool problem
  // is ever copied in pretraining. (A facts document uses only its problem's op, yet marks the
  // problem used too: it costs the pool nothing at these sizes, and the committed figures were
  // measured with this drawing order.)
  std::vector<Example> draw_skills(std::size_t n, const std::vector<Bucket>& buckets) {
    Rng rng = Rng::stream(seed_, "split:pretrain_skills");
    std::vector<Example> out;
    out.reserve(n);
    int misses = 0;
    while (out.size() < n && misses < kMaxConsecutiveCollisions && !buckets.empty()) {
      const Bucket& b = buckets[rng.below(buckets.size())];
      Problem p = random_problem(b.op, b.digits, "equation", rng);
      if (!used_.insert(p.key()).second) {
        ++misses;
        continue;
      }
      misses = 0;
      Example e;
      e.op = "skill";
      e.digits = p.digits();
      e.format = "skill";
      // A quarter copies, a quarter reversals, half one-digit facts (a closed table of ~1,100
      // entries that needs more repetitions than the other two skills).
      const std::size_t kind = out.size() % 4;
      if (kind == 0) {
        std::string text = render_question(p);         // "4821 + 379 = ?"
        text = text.substr(0, text.rfind(" = ?"));      // "4821 + 379"
        e.question = "Repeat: " + text;
        e.answer = text;
      } else if (kind >= 2) {
        // A short table in the notation of the trace's column lines, as a web page of times
        // tables has them: "Multiplication facts" -> "7*6+3=45\n4*5+0=20\n...".
        const bool mul = p.op.rfind("mul", 0) == 0;
        e.question = mul ? "Multiplication facts" : p.op == "sub" ? "Subtraction facts" : "Addition facts";
        for (int k = 0; k < kFactsPerDocument; ++k) {
          const auto [expr, value] = digit_fact(p.op, rng);
          e.answer += expr + "=" + std::to_string(value) + "\n";
        }
        e.digits = 1;
      } else {
        const std::string& x = p.operands[rng.below(p.operands.size())];
        e.question = "Reverse the digits of " + x + ".";
        e.answer = std::string(x.rbegin(), x.rend());
      }
      out.push_back(std::move(e));
    }
    return out;
  }

 private:
  std::uint64_t seed_;
  std::vector<std::string>& warnings_;
  std::unordered_set<std::string> used_;
};
}  // namespace

Splits make_splits(const SplitConfig& c) {
  c.validate();
  Splits s;
  s.config = c;
  Drawer d(c.seed, s.warnings);
  const auto train = buckets_for(c.train_ops, c.min_digits, c.max_digits);
  // Test sets first: they stay the same when pool or pretraining sizes change.
  s.id_test = d.draw("id_test", c.id_test_size, train, true, c.train_format);
  s.ood_long = d.draw("ood_long", c.ood_test_size,
                      buckets_for(c.train_ops, c.long_min(), c.long_max()), true, c.train_format);
  if (!c.heldout_ops.empty())
    s.ood_heldout = d.draw("ood_heldout", c.ood_test_size,
                           buckets_for(c.heldout_ops, c.min_digits, c.max_digits), true,
                           c.train_format);
  if (!c.ood_format.empty())
    s.ood_format = d.draw("ood_format", c.ood_test_size, train, true, c.ood_format);
  // The pool before pretraining: the pool and the ID test set are then drawn alike, so every
  // kind of ID problem is also in the pool. Where a digit range has few distinct problems
  // (one-digit sums, two-digit products), pretraining drawn first used them up: the pool held
  // none, and the ID set asked the tuned model problems no SFT sample looked like.
  s.pool = d.draw("pool", c.pool_size, train, false, c.train_format);
  const auto skills = static_cast<std::size_t>(
      std::llround(c.pretrain_skills_fraction * static_cast<double>(c.pretrain_size)));
  s.pretrain = d.draw("pretrain", c.pretrain_size - skills, train, false, c.train_format,
                      c.ood_format, c.ood_format.empty() ? 0.0 : c.pretrain_ood_format_fraction);
  if (skills > 0) {
    // Interleaved so that every packed pretraining block mixes both kinds of document.
    auto extra = d.draw_skills(skills, train);
    std::vector<Example> mixed;
    mixed.reserve(s.pretrain.size() + extra.size());
    std::size_t i = 0, j = 0;
    while (i < s.pretrain.size() || j < extra.size()) {
      // j / extra.size() tracks i / pretrain.size(): spread evenly.
      if (j < extra.size() && (i >= s.pretrain.size() ||
                               j * s.pretrain.size() <= i * extra.size()))
        mixed.push_back(std::move(extra[j++]));
      else
        mixed.push_back(std::move(s.pretrain[i++]));
    }
    s.pretrain = std::move(mixed);
  }
  check_disjoint(s.all());
  return s;
}

void check_disjoint(const std::vector<std::pair<std::string, const std::vector<Example>*>>& sets) {
  std::unordered_map<std::string, std::string> by_question, by_problem;
  for (const auto& [name, examples] : sets) {
    std::unordered_set<std::string> own_q, own_p;
    for (const auto& e : *examples) {
      auto it = by_question.find(e.question);
      if (it != by_question.end() && it->second != name)
        throw std::logic_error("question '" + e.question + "' is in both " + it->second +
                               " and " + name);
      auto p = parse_question(e.question);
      if (p) {
        auto jt = by_problem.find(p->key());
        if (jt != by_problem.end() && jt->second != name)
          throw std::logic_error("problem " + p->key() + " ('" + e.question + "') is in both " +
                                 jt->second + " and " + name);
        own_p.insert(p->key());
      }
      own_q.insert(e.question);
    }
    for (const auto& q : own_q) by_question.emplace(q, name);
    for (const auto& k : own_p) by_problem.emplace(k, name);
  }
}

std::string fingerprint(const std::vector<Example>& examples) {
  std::uint64_t h = fnv1a64("");
  for (const auto& e : examples) h = fnv1a64(nlohmann::json(e).dump() + "\n", h);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

nlohmann::json summary(const Splits& s) {
  const auto& c = s.config;
  const std::map<std::string, std::size_t> requested = {
      {"id_test", c.id_test_size},     {"ood_long", c.ood_test_size}, {"ood_heldout", c.ood_test_size},
      {"ood_format", c.ood_test_size}, {"pool", c.pool_size},         {"pretrain", c.pretrain_size}};
  nlohmann::json splits = nlohmann::json::object();
  for (const auto& [name, ex] : s.all()) {
    std::map<std::string, std::size_t> buckets, formats;
    std::size_t with_trace = 0;
    for (const auto& e : *ex) {
      ++buckets[bucket_of(e)];
      ++formats[e.format];
      with_trace += e.trace.empty() ? 0 : 1;
    }
    splits[name] = {{"count", ex->size()},     {"requested", requested.at(name)},
                    {"buckets", buckets},      {"formats", formats},
                    {"with_trace", with_trace}, {"fingerprint", fingerprint(*ex)}};
  }
  return {{"config", c}, {"splits", splits}, {"warnings", s.warnings}};
}

}  // namespace audit::datasets
