// N-gram overlap between training data and test sets (see decontam.h).
#include "datasets/decontam/decontam.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include "datasets/tasks/random.h"

namespace audit::datasets {

const char* to_string(NgramUnit u) { return u == NgramUnit::word ? "word" : "byte"; }

NgramUnit parse_ngram_unit(std::string_view s) {
  if (s == "word") return NgramUnit::word;
  if (s == "byte") return NgramUnit::byte;
  throw std::invalid_argument("unknown n-gram unit '" + std::string(s) + "' (word or byte)");
}

void to_json(nlohmann::json& j, const DecontamSetReport& r) {
  j = nlohmann::json{{"test_set", r.test_set},
                     {"items", r.items},
                     {"items_with_overlap", r.items_with_overlap},
                     {"items_fully_covered", r.items_fully_covered},
                     {"too_short", r.too_short},
                     {"fraction", r.fraction},
                     {"by_training_set", r.by_training_set},
                     {"examples", r.examples}};
}

void to_json(nlohmann::json& j, const DecontamReport& r) {
  j = nlohmann::json{{"n", r.n},
                     {"unit", r.unit},
                     {"training_sets", r.training_sets},
                     {"training_docs", r.training_docs},
                     {"training_ngrams", r.training_ngrams},
                     {"sets", r.sets}};
}

namespace {
bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_word_char(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}
char lower(unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); }

// Hash of units[b, b+k), seeded with k so grams of different lengths never collide by design.
std::uint64_t gram_hash(const std::vector<std::string>& units, std::size_t b, std::size_t k) {
  std::uint64_t h = splitmix64(k);
  for (std::size_t i = b; i < b + k; ++i) {
    h = fnv1a64(units[i], h);
    h = fnv1a64("\x1f", h);
  }
  return h;
}
}  // namespace

std::vector<std::string> ngram_units(std::string_view text, NgramUnit unit) {
  std::vector<std::string> out;
  if (unit == NgramUnit::word) {
    std::string cur;
    for (unsigned char c : text) {
      if (is_word_char(c)) {
        cur.push_back(lower(c));
        continue;
      }
      if (!cur.empty()) out.push_back(std::move(cur)), cur.clear();
      if (!is_space(c)) out.emplace_back(1, static_cast<char>(c));
    }
    if (!cur.empty()) out.push_back(std::move(cur));
  } else {
    bool pending_space = false;
    for (unsigned char c : text) {
      if (is_space(c)) {
        pending_space = !out.empty();
        continue;
      }
      if (pending_space) out.emplace_back(1, ' ');
      pending_space = false;
      out.emplace_back(1, lower(c));
    }
  }
  return out;
}

DecontamReport decontaminate(const std::vector<TextSet>& training, const std::vector<TextSet>& tests,
                             const DecontamConfig& cfg) {
  if (cfg.n < 1) throw std::invalid_argument("decontamination n must be >= 1");
  if (training.size() > 32) throw std::invalid_argument("at most 32 training sets");
  const std::size_t n = static_cast<std::size_t>(cfg.n);
  const std::size_t min_units = static_cast<std::size_t>(std::max(1, cfg.min_units));

  // Test units first: which gram lengths below n are needed (whole short items).
  std::vector<std::vector<std::vector<std::string>>> test_units(tests.size());
  std::set<std::size_t> lengths = {n};
  for (std::size_t t = 0; t < tests.size(); ++t)
    for (const auto& text : tests[t].texts) {
      test_units[t].push_back(ngram_units(text, cfg.unit));
      const std::size_t k = test_units[t].back().size();
      if (k >= min_units && k < n) lengths.insert(k);
    }

  // Training grams -> bitmask of the training sets holding them.
  DecontamReport rep;
  rep.n = cfg.n;
  rep.unit = to_string(cfg.unit);
  std::unordered_map<std::uint64_t, std::uint32_t> grams;
  for (std::size_t s = 0; s < training.size(); ++s) {
    rep.training_sets.push_back(training[s].name);
    const std::uint32_t bit = 1u << s;
    for (const auto& text : training[s].texts) {
      ++rep.training_docs;
      const auto units = ngram_units(text, cfg.unit);
      for (std::size_t k : lengths)
        for (std::size_t b = 0; b + k <= units.size(); ++b) grams[gram_hash(units, b, k)] |= bit;
    }
  }
  rep.training_ngrams = grams.size();

  for (std::size_t t = 0; t < tests.size(); ++t) {
    DecontamSetReport r;
    r.test_set = tests[t].name;
    r.items = tests[t].texts.size();
    for (const auto& name : rep.training_sets) r.by_training_set[name] = 0;
    for (std::size_t i = 0; i < test_units[t].size(); ++i) {
      const auto& u = test_units[t][i];
      if (u.size() < min_units) {
        ++r.too_short;
        continue;
      }
      const std::size_t k = std::min(n, u.size());
      std::uint32_t mask = 0;
      std::size_t hits = 0, total = 0;
      for (std::size_t b = 0; b + k <= u.size(); ++b, ++total) {
        auto it = grams.find(gram_hash(u, b, k));
        if (it != grams.end()) {
          mask |= it->second;
          ++hits;
        }
      }
      if (hits == 0) continue;
      ++r.items_with_overlap;
      if (hits == total) ++r.items_fully_covered;
      for (std::size_t s = 0; s < training.size(); ++s)
        if (mask & (1u << s)) ++r.by_training_set[training[s].name];
      if (r.examples.size() < cfg.max_examples) r.examples.push_back(tests[t].texts[i]);
    }
    r.fraction = r.items ? static_cast<double>(r.items_with_overlap) / static_cast<double>(r.items) : 0;
    rep.sets.push_back(std::move(r));
  }
  return rep;
}

TextSet questions_of(const std::string& name, const std::vector<Example>& examples) {
  TextSet s{name, {}};
  s.texts.reserve(examples.size());
  for (const auto& e : examples) s.texts.push_back(e.question);
  return s;
}

TextSet documents_of(const std::string& name, const std::vector<Example>& examples) {
  TextSet s{name, {}};
  s.texts.reserve(examples.size());
  for (const auto& e : examples) s.texts.push_back(e.question + "\n" + e.trace + e.answer);
  return s;
}

}  // namespace audit::datasets
