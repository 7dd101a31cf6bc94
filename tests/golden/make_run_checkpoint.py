#!/usr/bin/env python3
"""Makes a complete Hugging Face base-model folder for the `audit run` tests at test time (no
download, nothing committed): a byte-level BPE tokenizer trained with `tokenizers`, a tiny random
model made with `transformers` at the tokenizer's vocabulary, and a tokenizer_config.json with the
real chat template, all saved the way the hub's model folders are.

Usage: make_run_checkpoint.py OUTDIR --arch qwen2|llama --template FILE.jinja [--seed N]

  qwen2  Qwen2's split pattern, <|endoftext|> <|im_start|> <|im_end|>, Qwen2ForCausalLM with
         q/k/v biases and tied embeddings (Qwen2.5-0.5B's layout); the template is Qwen2.5's.
  llama  Llama 3's split pattern and header tokens, LlamaForCausalLM with llama3 rope scaling;
         the template is Llama 3's.

Writes OUTDIR/manifest.json and prints it as one JSON line: {"arch", "vocab_size", "parameters"}.
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tokenizers  # noqa: E402  (the corpus and the trainers of the tokenizer fixtures)

import torch  # noqa: E402
import transformers  # noqa: E402


def arithmetic_lines(rng, n=400):
    """Text shaped like the miniature's questions and traces, so the tokenizer has their pieces."""
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 9999), rng.randint(0, 9999)
        out.append(f"What is {a} + {b}?")
        out.append(f"add {a} {b}\ndigit 0: {a % 10} + {b % 10} = {(a + b) % 10} carry 0\nresult {a + b}")
        out.append(f"Answer: {a + b}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--arch", choices=["qwen2", "llama"], required=True)
    ap.add_argument("--template", required=True)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    lines = make_tokenizers.make_corpus(rng) + arithmetic_lines(rng)
    if a.arch == "qwen2":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = make_tokenizers.byte_level("qwen2", make_tokenizers.QWEN2_PATTERN, lines, specials)
        bos, eos, pad = None, "<|im_end|>", "<|endoftext|>"
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                    "<|end_header_id|>", "<|eot_id|>"]
        tok = make_tokenizers.byte_level("llama3", make_tokenizers.LLAMA3_PATTERN, lines, specials)
        bos, eos, pad = "<|begin_of_text|>", "<|eot_id|>", None
    os.makedirs(a.outdir, exist_ok=True)
    tok.save(os.path.join(a.outdir, "tokenizer.json"))
    with open(a.template, encoding="utf-8") as f:
        chat_template = f.read()
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": chat_template,
           "bos_token": bos, "eos_token": eos, "pad_token": pad, "model_max_length": 4096,
           "add_bos_token": False, "add_eos_token": False}
    with open(os.path.join(a.outdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)

    vocab = tok.get_vocab_size()
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  rms_norm_eps=1e-6, eos_token_id=tok.token_to_id(eos))
    torch.manual_seed(a.seed)
    if a.arch == "qwen2":
        config = transformers.Qwen2Config(rope_theta=1e6, tie_word_embeddings=True, **common)
        model = transformers.Qwen2ForCausalLM(config)
    else:
        config = transformers.LlamaConfig(
            rope_theta=5e5, tie_word_embeddings=False, bos_token_id=tok.token_to_id(bos),
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 128},
            **common)
        model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(a.outdir)
    manifest = {"arch": a.arch, "vocab_size": vocab,
                "parameters": sum(p.numel() for p in model.parameters())}
    with open(os.path.join(a.outdir, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    print(json.dumps(dict(manifest, dir=a.outdir)))


if __name__ == "__main__":
    main()
