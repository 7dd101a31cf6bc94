#!/usr/bin/env python3
"""The transformers side of the chat template tests (tests/chat_template_test.cpp).

Renders conversations with Jinja chat templates through transformers' own
`apply_chat_template(..., tokenize=False)`, on a tokenizer made here from a tiny `tokenizers`
vocabulary (no download) that carries the special tokens the template reads (bos_token, ...).

    chat_template_peer.py --jobs jobs.json --out rendered.json

jobs.json: {"jobs": [{"template": path of a .jinja file, "bos_token": str, "eos_token": str,
"cases": [{"messages": [{"role", "content"}], "add_generation_prompt": bool}, ...]}, ...]}.
rendered.json: {"transformers": version, "jobs": [{"rendered": [...]}, ...]}, one entry per case:
{"text": str}, or {"error": "ExceptionType: message"} when transformers refuses it. An s1 thinking
message arrives already built the s1 way (its content holds the markers). One process for all
templates: importing transformers is most of the time.
"""
import argparse
import json

import transformers
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast


def make_tokenizer(template, bos_token, eos_token):
    vocab = {"<unk>": 0}
    for tok in (bos_token, eos_token):
        if tok:
            vocab.setdefault(tok, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    kwargs = {"unk_token": "<unk>"}
    if bos_token:
        kwargs["bos_token"] = bos_token
    if eos_token:
        kwargs["eos_token"] = eos_token
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, **kwargs)
    tok.chat_template = template
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.jobs, encoding="utf-8") as f:
        jobs = json.load(f)["jobs"]
    results, count = [], 0
    for job in jobs:
        with open(job["template"], encoding="utf-8") as f:
            template = f.read()
        tok = make_tokenizer(template, job.get("bos_token", ""), job.get("eos_token", ""))
        rendered = []
        for case in job["cases"]:
            try:
                text = tok.apply_chat_template(case["messages"], tokenize=False,
                                               add_generation_prompt=case["add_generation_prompt"])
                rendered.append({"text": text})
            except Exception as e:  # the C++ side must refuse the same case
                rendered.append({"error": f"{type(e).__name__}: {e}"})
        results.append({"rendered": rendered})
        count += len(rendered)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "jobs": results}, f, ensure_ascii=False)
    print(json.dumps({"jobs": len(results), "cases": count}))


if __name__ == "__main__":
    main()
