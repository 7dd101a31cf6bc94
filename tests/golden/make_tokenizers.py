#!/usr/bin/env python3
"""Makes the Hugging Face tokenizer fixtures of tests/hf_tokenizer_test.cpp and
bench/tokenizer_bench.cpp at test time: no download, nothing committed.

Usage: make_tokenizers.py OUTDIR

Writes OUTDIR/corpus.txt (a seeded mixed corpus: Latin text with accents, CJK, emoji with ZWJ
sequences, digits and long numbers, code with indentation, tabs, runs of spaces, apostrophes),
then TRAINS small BPE tokenizers (vocab about 1500) on it with the `tokenizers` library and saves
each in the shape the real model ships, as OUTDIR/NAME/tokenizer.json:

  qwen2    Qwen2's split regex + ByteLevel(use_regex=false), NFC, <|endoftext|> <|im_start|> <|im_end|>
  llama3   Llama 3's split regex, ignore_merges=true, TemplateProcessing adding <|begin_of_text|>
  llama2   SentencePiece-style BPE: normalizer Prepend+Replace, byte_fallback, <unk> <s> </s>,
           decoder Replace/ByteFallback/Fuse/Strip, TemplateProcessing adding <s>
  mistral  SentencePiece-style BPE with the Metaspace pre-tokenizer (prepend_scheme first) and
           the Metaspace decoder
  gpt2     plain ByteLevel(use_regex=true), <|endoftext|> and added tokens with lstrip/rstrip/
           single_word flags

and variants of those files (same vocabulary and merges, other options):

  gpt2_prefix    ByteLevel(add_prefix_space=true)
  mistral_split  Metaspace prepend_scheme always, split true (pre-tokenizer and decoder)
  llama_legacy   the older Metaspace form {"add_prefix_space": true} with no normalizer

and OUTDIR/NAME/expected.jsonl: for each case text (every corpus line, multi-line documents made
of consecutive lines, and special-token texts) {"text", "ids" (add_special_tokens=False),
"ids_special" (True), "decoded", "decoded_skip"} as `tokenizers` computes them. Each
tokenizer.json is read back with Tokenizer.from_file before the expectations are computed, so the
expectations are those of the file as saved.
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
VOCAB = 1500

WORDS = ("the quick brown fox jumps over lazy dog it's they're we've I'm you'll she'd "
         "tokenizer model training cost audit claim reproduce budget GPU hours token "
         "café naïve façade résumé déjà vu über Straße Ångström coöperate señor piñata "
         "Übermensch ÉCOLE Ça". split())
CJK = ["你好世界", "机器学习", "大型语言模型", "東京都", "こんにちは", "カタカナ", "한국어", "训练成本"]
EMOJI = ["😀", "🚀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🧑‍💻", "🇫🇷"]
CODE = [
    "def encode(self, text):",
    "    ids = []",
    "    for word in text.split():",
    "        ids.extend(self.vocab[word])  # lookup",
    "\treturn ids",
    "if (x != 0 && y >= 10) { return x * y; }",
    "    \t  mixed   indentation\t\ttabs",
    "std::vector<int> v{1, 2, 3};",
]


def make_corpus(rng):
    lines = []
    for i in range(1400):
        kind = rng.randrange(6)
        if kind == 0:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 16)))
        elif kind == 1:
            line = "".join(rng.choice(CJK) for _ in range(rng.randint(1, 4)))
            line += " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 5)))
        elif kind == 2:
            line = " ".join(rng.choice(WORDS + EMOJI) for _ in range(rng.randint(2, 10)))
        elif kind == 3:
            n = rng.randint(0, 10 ** rng.randint(1, 20))
            line = (f"In {rng.randint(1900, 2030)} it cost ${n:,} ({n} exactly), "
                    f"or {rng.random() * 1000:.4f} per GPU-hour; id {rng.randint(0, 10**12)}")
        elif kind == 4:
            line = rng.choice(CODE)
        else:
            parts = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
            seps = ["  ", "   ", "\t", " \t ", "     ", " "]
            line = "".join(p + rng.choice(seps) for p in parts).rstrip(" ") + rng.choice(["", "  ", "\t"])
        lines.append(line)
    return lines


def cases(lines, rng, specials):
    out = list(lines)
    for _ in range(150):  # multi-line documents: newlines, runs of newlines, trailing spaces
        start = rng.randrange(len(lines) - 6)
        sep = rng.choice(["\n", "\n\n", "\n  \n", "\r\n", "\n\n\n"])
        out.append(sep.join(lines[start:start + rng.randint(2, 6)]))
    for _ in range(80):  # special and added tokens inside text
        a, b = rng.choice(lines), rng.choice(lines)
        tok = rng.choice(specials)
        glue = rng.choice(["", " ", "  ", "\n", "x"])
        out.append(a[:20] + glue + tok + glue + b[:20])
        out.append(tok + a[:15])
        out.append(a[:15] + tok)
    out += ["", " ", "  ", "\n", "\t", " leading space", "trailing space ", "a", "'s 're 'S 'RE",
            "x" * 300, "1234567890123456789", "é", "e\u0301", "\u00a0nbsp\u2003em space",
            "\u0085nel", "Hello\u200dWorld", "\U0001F600" * 5]
    return out


def train(name, tok, specials, lines, alphabet=None, limit_alphabet=None):
    kwargs = dict(vocab_size=VOCAB, min_frequency=2, special_tokens=specials, show_progress=False)
    if alphabet is not None:
        kwargs["initial_alphabet"] = alphabet
    if limit_alphabet is not None:
        kwargs["limit_alphabet"] = limit_alphabet
    tok.train_from_iterator(lines, trainers.BpeTrainer(**kwargs))
    return tok


def byte_level(name, pattern, lines, specials):
    tok = Tokenizer(models.BPE())
    if name == "qwen2":
        tok.normalizer = normalizers.NFC()
    if pattern is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tok.decoder = decoders.ByteLevel()
    return train(name, tok, specials, lines, alphabet=pre_tokenizers.ByteLevel.alphabet())


def sentencepiece(name, lines, specials):
    # Trained with a Metaspace pre-tokenizer (merges within words, as SentencePiece's), the
    # alphabet limited so that rare characters (CJK, emoji) take the byte fallback.
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return train(name, tok, specials, lines, limit_alphabet=150)


def reshape(path, fn):
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    fn(j)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=2)


def add_byte_tokens(j):
    """Llama 2's vocabulary: <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>, then the rest."""
    vocab = j["model"]["vocab"]
    specials = ["<unk>", "<s>", "</s>"]
    rest = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in specials]
    order = specials + [f"<0x{b:02X}>" for b in range(256)] + [t for t in rest if not
                                                                (t.startswith("<0x") and len(t) == 6)]
    j["model"]["vocab"] = {t: i for i, t in enumerate(order)}
    for a in j["added_tokens"]:
        a["id"] = j["model"]["vocab"][a["content"]]


def template(j, bos, bos_id):
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
    }


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(20261129)
    lines = make_corpus(rng)
    with open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    made = {}
    qwen_specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    made["qwen2"] = (byte_level("qwen2", QWEN2_PATTERN, lines, qwen_specials), qwen_specials)
    made["qwen2"][0].add_tokens([AddedToken("<tool_call>", special=False, normalized=False)])
    llama3_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    made["llama3"] = (byte_level("llama3", LLAMA3_PATTERN, lines, llama3_specials), llama3_specials)
    gpt2_specials = ["<|endoftext|>"]
    made["gpt2"] = (byte_level("gpt2", None, lines, gpt2_specials), gpt2_specials)
    made["gpt2"][0].add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, special=True)])
    made["gpt2"][0].add_tokens([AddedToken("<sep>", rstrip=True, special=False, normalized=False),
                                AddedToken("audit", single_word=True, special=False, normalized=False)])
    sp_specials = ["<unk>", "<s>", "</s>"]
    made["llama2"] = (sentencepiece("llama2", lines, sp_specials), sp_specials)
    made["mistral"] = (sentencepiece("mistral", lines, sp_specials), sp_specials)

    for name, (tok, specials) in made.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        tok.save(path)

        def shape(j, name=name):
            if name in ("qwen2", "llama3", "gpt2"):
                j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False,
                                       "trim_offsets": False, "use_regex": False}
                j["decoder"] = {"type": "ByteLevel", "add_prefix_space": False,
                                "trim_offsets": False, "use_regex": False}
            if name == "llama3":
                j["model"]["ignore_merges"] = True
                bos = j["added_tokens"][0]
                template(j, bos["content"], bos["id"])
                j["post_processor"] = {"type": "Sequence", "processors": [
                    {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                     "use_regex": True}, j["post_processor"]]}
            if name in ("llama2", "mistral"):
                add_byte_tokens(j)
                template(j, "<s>", j["model"]["vocab"]["<s>"])
                j["model"]["ignore_merges"] = False
            if name == "llama2":
                j["normalizer"] = {"type": "Sequence", "normalizers": [
                    {"type": "Prepend", "prepend": "▁"},
                    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
                j["pre_tokenizer"] = None
                j["decoder"] = {"type": "Sequence", "decoders": [
                    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                    {"type": "ByteFallback"}, {"type": "Fuse"},
                    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
            if name == "mistral":
                j["normalizer"] = None
                j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁",
                                      "prepend_scheme": "first", "split": False}
                j["decoder"] = {"type": "Metaspace", "replacement": "▁",
                                "prepend_scheme": "first", "split": False}
        reshape(path, shape)
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump({"bos_token": specials[0] if name != "llama2" else "<s>",
                       "eos_token": specials[-1], "model_max_length": 4096}, f)

        expect(d, lines)

    def variant(src, name, fn):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(out, src, "tokenizer.json"), encoding="utf-8") as f:
            j = json.load(f)
        fn(j)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, indent=2)
        expect(d, lines)
        made[name] = None

    def prefix(j):
        j["pre_tokenizer"]["add_prefix_space"] = True

    def split(j):
        for k in ("pre_tokenizer", "decoder"):
            j[k]["prepend_scheme"], j[k]["split"] = "always", True

    def legacy(j):
        j["normalizer"] = None
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}
        j["decoder"] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}

    variant("gpt2", "gpt2_prefix", prefix)
    variant("mistral", "mistral_split", split)
    variant("llama2", "llama_legacy", legacy)
    print(json.dumps({"out": out, "tokenizers": sorted(made)}))


def expect(d, lines):
    """Writes d/expected.jsonl from d/tokenizer.json as tokenizers reads it back."""
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    extra = [t.content for t in tok.get_added_tokens_decoder().values()]
    with open(os.path.join(d, "expected.jsonl"), "w", encoding="utf-8") as f:
        for text in cases(lines, random.Random(7), extra):
            ids = tok.encode(text, add_special_tokens=False).ids
            rec = {"text": text, "ids": ids,
                   "ids_special": tok.encode(text, add_special_tokens=True).ids,
                   "decoded": tok.decode(ids, skip_special_tokens=False),
                   "decoded_skip": tok.decode(ids, skip_special_tokens=True)}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
