// `audit tokenize DIR (--text T | --file F) [--specials] [--compare]`: encodes text with a
// Hugging Face tokenizer.json read natively (datasets/hf_tokenizer) and prints one JSON line per
// input line, {"line": N, "ids": [...]}. --compare encodes the same lines with the `tokenizers`
// library (the Python peer tests/golden/tokenize_peer.py) and stops at the first difference.
// Exit 0; 1 when --compare finds a difference; 2 on bad input (no tokenizer.json, an unsupported
// or malformed one, text that is not UTF-8).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/errors.h"
#include "common/python_peer.h"  // default_python, shell_quote, run_python_json
#include "common/resources.h"    // resource_path
#include "datasets/hf_tokenizer/hf_tokenizer.h"
#include "reproduce/cli/cli.h"

namespace audit::cli {
namespace {

struct TokenizeOptions {
  std::string dir;
  std::string text;
  std::string file;
  bool specials = false;
  bool compare = false;
};

// The input split into lines (a final newline ends the last line, it does not start another).
std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t nl = s.find('\n', start);
    if (nl == std::string::npos) {
      if (start < s.size() || lines.empty()) lines.push_back(s.substr(start));
      break;
    }
    lines.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::string ids_json(const std::vector<datasets::TokenId>& ids) { return nlohmann::json(ids).dump(); }

// The peer's ids for every line, as `tokenizers` encodes them.
std::vector<std::vector<datasets::TokenId>> peer_ids(const TokenizeOptions& o,
                                                     const std::vector<std::string>& lines,
                                                     std::string& version) {
  char tmpl[] = "/tmp/audit_tokenize.XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) throw std::runtime_error("cannot make a temporary file in /tmp");
  ::close(fd);
  const std::string tmp = tmpl;
  struct Remove {
    std::string p;
    ~Remove() { std::remove(p.c_str()); }
  } remove{tmp};
  {
    std::ofstream out(tmp, std::ios::binary);
    out << nlohmann::json(lines).dump();
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  const std::string cmd = "TOKENIZERS_PARALLELISM=false " + shell_quote(default_python()) + " " +
                          shell_quote(resource_path("peers/tokenize_peer.py")) + " " +
                          shell_quote(o.dir) + " " + shell_quote(tmp) +
                          (o.specials ? " --specials" : "") + " 2>&1";
  const nlohmann::json r = run_python_json(cmd, "the tokenizers peer");
  version = r.value("tokenizers", std::string("?"));
  const auto ids = r.at("ids").get<std::vector<std::vector<datasets::TokenId>>>();
  if (ids.size() != lines.size())
    throw std::runtime_error("the tokenizers peer returned " + std::to_string(ids.size()) +
                             " lines for " + std::to_string(lines.size()));
  return ids;
}

int run_tokenize(const TokenizeOptions& o) {
  const auto tok = datasets::HfTokenizer::load(o.dir);
  std::string input, source = "--text";
  if (!o.file.empty()) {
    std::ifstream in(o.file, std::ios::binary);
    if (!in) throw InputError(o.file, 0, 0, "--file", "cannot read the file");
    std::stringstream ss;
    ss << in.rdbuf();
    input = ss.str();
    source = o.file;
  } else {
    input = o.text;
  }
  const std::vector<std::string> lines = split_lines(input);
  std::vector<std::vector<datasets::TokenId>> ours;
  ours.reserve(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    try {
      ours.push_back(o.specials ? tok->encode_with_specials(lines[i]) : tok->encode(lines[i]));
    } catch (const std::invalid_argument&) {
      throw InputError(source, static_cast<long>(i + 1), 0, "", "the text is not valid UTF-8");
    }
  }
  std::vector<std::vector<datasets::TokenId>> theirs;
  std::string version;
  if (o.compare) theirs = peer_ids(o, lines, version);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (o.compare && ours[i] != theirs[i]) {
      std::fflush(stdout);
      std::fprintf(stderr,
                   "tokenize: line %zu differs from tokenizers %s\n  text:       %s\n"
                   "  audit:      %s\n  tokenizers: %s\n",
                   i + 1, version.c_str(), nlohmann::json(lines[i]).dump().c_str(),
                   ids_json(ours[i]).c_str(), ids_json(theirs[i]).c_str());
      return kExitVerdictFailed;
    }
    std::printf("{\"line\": %zu, \"ids\": %s}\n", i + 1, ids_json(ours[i]).c_str());
  }
  if (o.compare) {
    std::fflush(stdout);
    std::fprintf(stderr, "tokenize: all %zu lines agree with tokenizers %s (%s, %s)\n", lines.size(),
                 version.c_str(), tok->kind().c_str(), tok->path().c_str());
  }
  return kExitOk;
}

}  // namespace

void add_tokenize_command(CLI::App& app, GlobalOptions& /*g*/) {
  auto o = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand(
      "tokenize", "Encode text with a Hugging Face tokenizer.json (native, no Python)");
  cmd->add_option("dir", o->dir, "Folder holding tokenizer.json, or the tokenizer.json itself")
      ->required();
  auto* text = cmd->add_option("--text", o->text, "The text to encode (one JSON line per line of it)");
  auto* file = cmd->add_option("--file", o->file, "A UTF-8 file to encode, line by line");
  text->excludes(file);
  file->excludes(text);
  cmd->add_flag("--specials", o->specials,
                "Add the post-processor's special tokens (e.g. Llama's BOS): "
                "tokenizers' add_special_tokens=True");
  cmd->add_flag("--compare", o->compare,
                "Also encode every line with the Python `tokenizers` library and exit 1 at the "
                "first difference");
  cmd->footer(
      "Prints one JSON line per input line: {\"line\": N, \"ids\": [...]}, N counted from 1. The\n"
      "ids are those of tokenizers' encode(line, add_special_tokens=False), or =True with\n"
      "--specials; text spelling an added token (\"<|im_end|>\") becomes its id, as in tokenizers.\n"
      "Supported: BPE models, byte-level (GPT-2, Qwen2, Llama 3) and SentencePiece-style (Llama 2,\n"
      "Mistral: byte fallback, Metaspace); anything else (WordPiece, Unigram, unknown normalizers\n"
      "or pre-tokenizers) is refused naming the file and the key. See\n"
      "datasets/hf_tokenizer/hf_tokenizer.h for the full list.\n\n"
      "--compare runs the peer share/audit/peers/tokenize_peer.py with the venv's Python\n"
      "($AUDIT_PYTHON to override) on the same lines; on the first line whose ids differ it prints\n"
      "the line number, the text and both id lists on stderr and exits 1; when all agree it prints\n"
      "a summary line on stderr and exits 0.\n\n"
      "Examples:\n"
      "  audit tokenize ~/models/Qwen2.5-0.5B --text 'Hello, world!'\n"
      "  audit tokenize ~/models/Llama-2-7b/tokenizer.json --file corpus.txt --specials --compare\n\n"
      "Exit codes: 0 ok; 1 --compare found a difference; 2 bad input (no or unsupported\n"
      "tokenizer.json, unreadable or non-UTF-8 text, neither --text nor --file); 3 unexpected\n"
      "failure.");
  cmd->callback([o, text, file] {
    run_and_exit("tokenize", [o, text, file] {
      if (text->count() == 0 && file->count() == 0)
        throw InputError("", 0, 0, "--text/--file", "give the text to encode with --text or --file");
      return run_tokenize(*o);
    });
  });
}

}  // namespace audit::cli
