// HfTokenizer (datasets/hf_tokenizer) against the `tokenizers` library: tests/golden/
// make_tokenizers.py trains five small BPE tokenizers at test time in the shapes Qwen2, Llama 3,
// Llama 2, Mistral and GPT-2 ship (and three variants of their options), and writes what tokenizers encodes and decodes for every
// corpus line, multi-line documents and texts holding special tokens; every id and every decoded
// string must be identical. Then the refusals (each an InputError naming the file and the key),
// a seeded fuzz of tokenizer.json, and `audit tokenize`.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/python_peer.h"
#include "datasets/hf_tokenizer/hf_tokenizer.h"
#include "tests/support/support.h"

namespace audit::datasets {
namespace {

using json = nlohmann::json;
using testing::TempDir;

const char* const kFixtures[] = {"qwen2",   "llama3",      "llama2",        "mistral",
                                 "gpt2",    "gpt2_prefix", "mistral_split", "llama_legacy"};

// The fixtures, made once per build folder (tests/support python_fixture; training takes a few
// seconds).
class HfTokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string script = testing::source_dir() + "/tests/golden/make_tokenizers.py";
    dir_ = testing::python_fixture(
        "tokenizers", "'" + default_python() + "' '" + script + "' {OUT} > /dev/null", {script});
  }
  void SetUp() override { ASSERT_FALSE(dir_.empty()) << "make_tokenizers.py failed"; }
  static std::string fixture(const std::string& name) { return dir_ + "/" + name; }
  static json read_json(const std::string& path) { return json::parse(testing::read_file(path)); }

  static std::string dir_;
};
std::string HfTokenizerTest::dir_;

TEST_F(HfTokenizerTest, IdsAndDecodeMatchTokenizersOnEveryCase) {
  for (const char* name : kFixtures) {
    SCOPED_TRACE(name);
    const auto tok = HfTokenizer::load(fixture(name));
    std::ifstream in(fixture(name) + "/expected.jsonl");
    std::string line;
    size_t cases = 0, round_trips = 0, id_failures = 0, other_failures = 0;
    while (std::getline(in, line)) {
      const json rec = json::parse(line);
      const std::string text = rec["text"];
      ++cases;
      const auto ids = tok->encode(text);
      const auto want = rec["ids"].get<std::vector<TokenId>>();
      if (ids != want && ++id_failures <= 5)
        ADD_FAILURE() << "ids differ on " << json(text).dump() << "\n  ours:       "
                      << json(ids).dump() << "\n  tokenizers: " << rec["ids"].dump();
      if (tok->encode_with_specials(text) != rec["ids_special"].get<std::vector<TokenId>>() &&
          ++other_failures <= 5)
        ADD_FAILURE() << "add_special_tokens=True ids differ on " << json(text).dump();
      const std::string decoded = tok->decode(want);
      if (decoded != rec["decoded"].get<std::string>() && ++other_failures <= 5)
        ADD_FAILURE() << "decode differs on " << json(text).dump() << ": " << json(decoded).dump()
                      << " vs " << rec["decoded"].dump();
      if (tok->decode(want, true) != rec["decoded_skip"].get<std::string>() && ++other_failures <= 5)
        ADD_FAILURE() << "decode(skip_special) differs on " << json(text).dump();
      if (rec["decoded"] == text) {  // tokenizers round-trips this text: so must we
        ++round_trips;
        if (tok->decode(ids) != text && ++other_failures <= 5)
          ADD_FAILURE() << "decode(encode(x)) != x on " << json(text).dump();
      }
    }
    EXPECT_GT(cases, 1500u);
    // ByteLevel(add_prefix_space) decodes with the space it added, as tokenizers does.
    EXPECT_GT(round_trips, std::string(name) == "gpt2_prefix" ? 100 : cases / 2);
    EXPECT_EQ(id_failures, 0u);
    EXPECT_EQ(other_failures, 0u);
  }
}

TEST_F(HfTokenizerTest, KindsVocabularyAndSpecials) {
  const auto qwen = HfTokenizer::load(fixture("qwen2") + "/tokenizer.json");
  EXPECT_EQ(qwen->kind(), "byte_level_bpe");
  EXPECT_EQ(qwen->path(), fixture("qwen2") + "/tokenizer.json");
  const json j = read_json(qwen->path());
  int64_t max_id = -1;
  for (const auto& [tok, id] : j["model"]["vocab"].items()) max_id = std::max<int64_t>(max_id, id.get<int64_t>());
  for (const auto& a : j["added_tokens"]) max_id = std::max<int64_t>(max_id, a["id"].get<int64_t>());
  EXPECT_EQ(qwen->vocab_size(), max_id + 1);
  const TokenId im_end = qwen->token_to_id("<|im_end|>");
  ASSERT_GE(im_end, 0);
  EXPECT_TRUE(qwen->is_special(im_end));
  EXPECT_EQ(qwen->id_to_token(im_end), "<|im_end|>");
  EXPECT_EQ(qwen->token_to_id("no such token at all"), -1);
  const TokenId tool = qwen->token_to_id("<tool_call>");
  ASSERT_GE(tool, 0);
  EXPECT_FALSE(qwen->is_special(tool));
  // A special spelled in the text becomes its id; skip_special drops it on decode.
  const auto ids = qwen->encode("hi<|im_end|>\n");
  EXPECT_NE(std::find(ids.begin(), ids.end(), im_end), ids.end());
  EXPECT_EQ(qwen->decode(ids), "hi<|im_end|>\n");
  EXPECT_EQ(qwen->decode(ids, true), "hi\n");
  EXPECT_THROW(qwen->decode({static_cast<TokenId>(qwen->vocab_size())}), std::out_of_range);
  EXPECT_THROW(qwen->encode(std::string("\xff\xfe")), std::invalid_argument);
  const json d = qwen->describe();
  EXPECT_EQ(d["kind"], "byte_level_bpe");
  EXPECT_EQ(d["vocab_size"], qwen->vocab_size());
  EXPECT_EQ(d["specials"]["<|im_end|>"], im_end);
  EXPECT_EQ(d["config"]["eos_token"], "<|im_end|>");

  const auto llama2 = HfTokenizer::load(fixture("llama2"));
  EXPECT_EQ(llama2->kind(), "sentencepiece_bpe");
  const TokenId bos = llama2->token_to_id("<s>");
  const auto with = llama2->encode_with_specials("hello");
  ASSERT_FALSE(with.empty());
  EXPECT_EQ(with.front(), bos);
  EXPECT_EQ(std::vector<TokenId>(with.begin() + 1, with.end()), llama2->encode("hello"));
  // Byte fallback: a character outside the trained alphabet becomes <0xNN> tokens.
  const auto ids2 = llama2->encode("\xF0\x9F\xA6\x84");  // U+1F984, not in the corpus
  ASSERT_EQ(ids2.size(), 5u);                            // "▁" and four bytes
  EXPECT_EQ(llama2->id_to_token(ids2[1]), "<0xF0>");
  EXPECT_EQ(llama2->decode(ids2), "\xF0\x9F\xA6\x84");
  const auto llama3 = HfTokenizer::load(fixture("llama3"));
  EXPECT_EQ(llama3->encode_with_specials("x").front(), llama3->token_to_id("<|begin_of_text|>"));
}

// encode() is const and may run on several threads at once (the word cache is shared).
TEST_F(HfTokenizerTest, ConcurrentEncodeMatchesSerial) {
  const auto tok = HfTokenizer::load(fixture("qwen2"));
  std::vector<std::string> lines;
  std::istringstream in(testing::read_file(dir_ + "/corpus.txt"));
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  const auto fresh = HfTokenizer::load(fixture("qwen2"));  // its own cache, one thread
  std::vector<std::vector<TokenId>> serial;
  for (const auto& l : lines) serial.push_back(fresh->encode(l));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < lines.size(); ++i) {
        const size_t k = (i * 7 + static_cast<size_t>(t) * 131) % lines.size();
        if (tok->encode(lines[k]) != serial[k]) ++mismatches[static_cast<size_t>(t)];
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// Rewrites a fixture's tokenizer.json with `edit` into a folder of its own, and returns the
// InputError message loading it gives (or "loaded" when it loads).
std::string refusal(const std::string& src, const std::string& out_dir,
                    const std::function<void(json&)>& edit) {
  json j = json::parse(testing::read_file(src + "/tokenizer.json"));
  edit(j);
  testing::write_file(out_dir + "/tokenizer.json", j.dump());
  try {
    HfTokenizer::load(out_dir);
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(out_dir + "/tokenizer.json"), std::string::npos) << e.what();
    return e.what();
  }
  return "loaded";
}

TEST_F(HfTokenizerTest, RefusesWhatItDoesNotSupportNamingFileAndKey) {
  TempDir tmp("audit_hf_bad");
  const std::string q = fixture("qwen2"), l = fixture("llama2");
  struct Case {
    std::string src;
    std::function<void(json&)> edit;
    std::string want;  // in the message
  };
  const std::vector<Case> cases = {
      {q, [](json& j) { j["model"]["type"] = "Unigram"; }, "'model.type': \"Unigram\" is not supported (supported: BPE)"},
      {q, [](json& j) { j["model"]["type"] = "WordPiece"; }, "'model.type': \"WordPiece\""},
      {q, [](json& j) { j["model"]["dropout"] = 0.1; }, "'model.dropout'"},
      {q, [](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "'model.continuing_subword_prefix'"},
      {q, [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }, "'model.end_of_word_suffix'"},
      {q, [](json& j) { j["model"]["merges"][3] = "zzzq qqqz"; }, "'model.merges[3]'"},
      {q, [](json& j) { j["model"]["merges"][0] = 7; }, "'model.merges[0]'"},
      {q, [](json& j) { j["model"]["vocab"]["Ġthe"] = "x"; }, "'model.vocab.Ġthe'"},
      {q, [](json& j) { j["model"]["unk_token"] = "<nope>"; }, "'model.unk_token'"},
      {q, [](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, "'normalizer.type': \"Lowercase\" is not supported"},
      {l, [](json& j) { j["normalizer"]["normalizers"][1]["type"] = "StripAccents"; }, "'normalizer.normalizers[1].type'"},
      {q, [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "'pre_tokenizer.type': \"Whitespace\""},
      {q, [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; }, "'pre_tokenizer.pretokenizers[0].pattern.Regex'"},
      {q, [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; }, "'pre_tokenizer.pretokenizers[0].behavior'"},
      {q, [](json& j) { std::swap(j["pre_tokenizer"]["pretokenizers"][0], j["pre_tokenizer"]["pretokenizers"][1]); }, "ByteLevel must be the last"},
      {q, [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "'decoder.type': \"WordPiece\""},
      {q, [](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; }, "'post_processor.type': \"RobertaProcessing\""},
      {l, [](json& j) { j["post_processor"]["single"][1]["Sequence"]["id"] = "B"; }, "'post_processor.single[1].Sequence.id'"},
      {q, [](json& j) { j["truncation"] = {{"max_length", 512}}; }, "'truncation'"},
      {q, [](json& j) { j["added_tokens"][0]["special"] = "yes"; }, "'added_tokens[0].special'"},
      {q, [](json& j) { j["added_tokens"][1]["id"] = -4; }, "'added_tokens[1].id'"},
      {l, [](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "ab"}}; }, "'pre_tokenizer.replacement'"},
      {q, [](json& j) { j.erase("model"); }, "'model': is missing"},
      {q, [](json& j) { j = json::array(); }, "the top level must be an object"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string d = tmp.file("case" + std::to_string(i));
    ASSERT_EQ(testing::run_command("mkdir -p '" + d + "'").exit_code, 0);
    const std::string msg = refusal(cases[i].src, d, cases[i].edit);
    EXPECT_NE(msg.find(cases[i].want), std::string::npos) << "case " << i << ": " << msg;
  }
  // Not JSON, and no tokenizer.json at all.
  testing::write_file(tmp.file("tokenizer.json"), "{\"model\": ");
  EXPECT_THROW(HfTokenizer::load(tmp.path()), InputError);
  EXPECT_THROW(HfTokenizer::load(tmp.file("nowhere")), InputError);
  // A malformed tokenizer_config.json beside a good tokenizer.json.
  const std::string d = tmp.file("cfg");
  ASSERT_EQ(testing::run_command("mkdir -p '" + d + "'").exit_code, 0);
  testing::write_file(d + "/tokenizer.json", testing::read_file(q + "/tokenizer.json"));
  testing::write_file(d + "/tokenizer_config.json", "{\"eos_token\": 5}");
  try {
    HfTokenizer::load(d);
    ADD_FAILURE() << "a malformed tokenizer_config.json loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json: 'eos_token'"), std::string::npos) << e.what();
  }
}

// Replaces one JSON value, picked at random, by a value of another type.
void swap_a_value(json& j, std::mt19937& rng) {
  std::vector<json*> all;
  std::vector<json*> stack{&j};
  while (!stack.empty()) {
    json* v = stack.back();
    stack.pop_back();
    all.push_back(v);
    if (v->is_object() && v->size() < 64)
      for (auto& x : v->items()) stack.push_back(&x.value());
    if (v->is_array() && v->size() < 64)
      for (auto& x : *v) stack.push_back(&x);
  }
  json* target = all[rng() % all.size()];
  const json choices[] = {nullptr, true, 0, -1, 1.5, 4294967296LL, "", "Regex", json::array(),
                          json::object(), json::array({"a", "b"}), json{{"type", "Sequence"}}};
  *target = choices[rng() % (sizeof choices / sizeof choices[0])];
}

TEST_F(HfTokenizerTest, FuzzedTokenizerJsonIsRefusedOrLoadsNeverCrashes) {
  TempDir tmp("audit_hf_fuzz");
  std::mt19937 rng(1129);
  int loaded = 0, refused = 0;
  for (const char* name : {"qwen2", "llama2", "mistral", "gpt2"}) {
    const std::string text = testing::read_file(fixture(name) + "/tokenizer.json");
    const json base = json::parse(text);
    for (int i = 0; i < 500; ++i) {
      std::string mutated;
      const int how = static_cast<int>(rng() % 3);
      if (how == 0) {  // byte flips
        mutated = text;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] ^= static_cast<char>(1 + rng() % 255);
      } else if (how == 1) {  // truncation
        mutated = text.substr(0, rng() % text.size());
      } else {  // type swaps
        json j = base;
        const int swaps = 1 + static_cast<int>(rng() % 3);
        for (int s = 0; s < swaps; ++s) swap_a_value(j, rng);
        mutated = j.dump();
      }
      testing::write_file(tmp.file("tokenizer.json"), mutated);
      std::unique_ptr<HfTokenizer> tok;
      try {
        tok = HfTokenizer::load(tmp.path());
        ++loaded;
      } catch (const InputError&) {
        ++refused;
        continue;
      } catch (const std::exception& e) {
        ADD_FAILURE() << "iteration " << i << " of " << name << ": " << typeid(e).name() << ": " << e.what();
        continue;
      }
      // What loads must encode and decode without crashing.
      for (const char* s : {"Hello world, it's 2026!", "  \t\n<|im_end|>你好 🚀", ""}) {
        try {
          const auto ids = tok->encode_with_specials(s);
          tok->decode(ids);
          tok->decode(ids, true);
        } catch (const std::exception&) {
          // An exception is allowed (for instance a template id outside the vocabulary); a crash is not.
        }
      }
    }
  }
  EXPECT_GT(refused, 400);
  EXPECT_GT(loaded, 50);
}

TEST_F(HfTokenizerTest, TokenizeCommand) {
  TempDir tmp("audit_tokenize_cli");
  const std::string q = fixture("qwen2");
  const auto tok = HfTokenizer::load(q);
  auto r = testing::run_audit("tokenize '" + q + "' --text 'Hello world<|im_end|>'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json line = json::parse(r.output);
  EXPECT_EQ(line["line"], 1);
  EXPECT_EQ(line["ids"].get<std::vector<TokenId>>(), tok->encode("Hello world<|im_end|>"));

  // A file, line by line, compared with tokenizers; --specials adds Llama 2's BOS.
  const std::string corpus = testing::read_file(dir_ + "/corpus.txt");
  std::string head;
  std::istringstream in(corpus);
  std::string l;
  for (int i = 0; i < 200 && std::getline(in, l); ++i) head += l + "\n";
  testing::write_file(tmp.file("head.txt"), head);
  r = testing::run_audit("tokenize '" + fixture("llama2") + "' --file '" + tmp.file("head.txt") +
                         "' --specials --compare 2>" + tmp.file("err.txt"));
  ASSERT_EQ(r.exit_code, 0) << r.output << testing::read_file(tmp.file("err.txt"));
  EXPECT_NE(testing::read_file(tmp.file("err.txt")).find("all 200 lines agree with tokenizers"),
            std::string::npos) << testing::read_file(tmp.file("err.txt"));
  std::istringstream out(r.output);
  const auto llama2 = HfTokenizer::load(fixture("llama2"));
  std::istringstream lines(head);
  int n = 0;
  while (std::getline(out, l) && std::getline(lines, head)) {
    const json rec = json::parse(l);
    EXPECT_EQ(rec["line"], ++n);
    EXPECT_EQ(rec["ids"].get<std::vector<TokenId>>(), llama2->encode_with_specials(head));
  }
  EXPECT_EQ(n, 200);

  // Bad input: exit 2 naming what is wrong.
  r = testing::run_audit("tokenize '" + tmp.file("nowhere") + "' --text hi");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("tokenizer.json"), std::string::npos) << r.output;
  testing::write_file(tmp.file("tokenizer.json"), "{\"model\": {\"type\": \"Unigram\"}}");
  r = testing::run_audit("tokenize '" + tmp.path() + "' --text hi");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("'model.type': \"Unigram\" is not supported"), std::string::npos) << r.output;
  r = testing::run_audit("tokenize '" + q + "'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  testing::write_file(tmp.file("bad.txt"), "ok\n\xff\xfe\n");
  r = testing::run_audit("tokenize '" + q + "' --file '" + tmp.file("bad.txt") + "'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.txt:2"), std::string::npos) << r.output;
  r = testing::run_audit("tokenize --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--compare"), std::string::npos);
  EXPECT_NE(r.output.find("add_special_tokens"), std::string::npos);
}

}  // namespace
}  // namespace audit::datasets
