#!/usr/bin/env python3
"""Tiny random Hugging Face checkpoints for the checkpoint tests (and the forward-parity tests).

Writes, with `transformers` itself (save_pretrained), seeded random decoder models into OUTDIR,
one folder per variant, each with config.json, model.safetensors (or sharded
model-0000N-of-0000M.safetensors plus model.safetensors.index.json), generation_config.json and a
small word-level tokenizer (tokenizer.json, tokenizer_config.json, special_tokens_map.json where
this transformers writes one). Nothing is downloaded. Prints a JSON manifest on stdout:

  [{"dir": ".../qwen2-tied-bf16", "name": "qwen2-tied-bf16", "arch": "qwen2", "dtype": "bfloat16",
    "sharded": false, "tied": true}, ...]

Usage: python make_hf_checkpoints.py OUTDIR [--arch NAME ...] [--big-0.5b]

  --arch NAME   only the variants of these model_types (qwen2, llama, mistral); default: all
  --big-0.5b    also (or, with --arch none, only) a random model of Qwen2.5-0.5B's shapes (hidden
                896, 24 layers, 14 heads, 2 kv heads, ffn 4864, vocab 151936, tied), bf16 on disk,
                one file, as the checkpoint-loading benchmark uses
"""
import argparse
import json
import os
import sys

import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM)

SEED = 1234

# The tiny shapes shared by every small variant (vocab = the tokenizer's size below).
TINY = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
            rms_norm_eps=1e-6)

# name, arch, dtype, sharded, tied, extra config keys
VARIANTS = [
    ("qwen2-tied-bf16", "qwen2", torch.bfloat16, False, True, {"rope_theta": 1000000.0}),
    ("qwen2-untied-fp32-sharded", "qwen2", torch.float32, True, False, {}),
    ("llama-rope3-bf16-sharded", "llama", torch.bfloat16, True, False,
     {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                       "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
      "rope_theta": 500000.0}),
    ("llama-fp32", "llama", torch.float32, False, True, {}),
    ("mistral-fp32", "mistral", torch.float32, False, False, {"sliding_window": 16}),
    ("mistral-bf16-sharded", "mistral", torch.bfloat16, True, False, {"sliding_window": None}),
]

CLASSES = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM),
           "mistral": (MistralConfig, MistralForCausalLM)}


def make_tokenizer(vocab_size):
    """A word-level tokenizer of exactly vocab_size entries with three special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    words = ["[UNK]"] + [f"w{i}" for i in range(vocab_size - 1 - len(specials))]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token="[UNK]")


def build(arch, dtype, tied, shapes, extra):
    cfg_cls, model_cls = CLASSES[arch]
    kw = dict(shapes)
    kw.update(extra)
    kw["tie_word_embeddings"] = tied
    cfg = cfg_cls(**kw)
    torch.manual_seed(SEED)
    model = model_cls(cfg)
    # Random norms too, so a loader that skips a norm (ones at init) is caught.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p) if name.endswith("norm.weight")
                        else 0.02 * torch.randn_like(p))
    return model.to(dtype)


def write(out, name, arch, dtype, sharded, tied, shapes, extra, tokenizer):
    path = os.path.join(out, name)
    os.makedirs(path, exist_ok=True)
    model = build(arch, dtype, tied, shapes, extra)
    if sharded:
        model.save_pretrained(path, max_shard_size="20KB")
    else:
        model.save_pretrained(path, max_shard_size="100GB")
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return {"dir": os.path.abspath(path), "name": name, "arch": arch,
            "dtype": str(dtype).replace("torch.", ""), "sharded": sharded, "tied": tied,
            "parameters": sum(p.numel() for p in model.parameters())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--arch", action="append", default=None,
                    help="qwen2, llama, mistral (repeatable), or none; default all")
    ap.add_argument("--big-0.5b", dest="big", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    archs = set(a.arch) if a.arch else set(CLASSES)
    manifest = []
    tokenizer = make_tokenizer(TINY["vocab_size"])
    for name, arch, dtype, sharded, tied, extra in VARIANTS:
        if arch in archs:
            manifest.append(write(a.outdir, name, arch, dtype, sharded, tied, TINY, extra,
                                  tokenizer))
    if a.big:
        big = dict(vocab_size=151936, hidden_size=896, num_hidden_layers=24,
                   num_attention_heads=14, num_key_value_heads=2, intermediate_size=4864,
                   max_position_embeddings=32768, rms_norm_eps=1e-6)
        manifest.append(write(a.outdir, "qwen2-0.5b-bf16", "qwen2", torch.bfloat16, False, True,
                              big, {"rope_theta": 1000000.0}, None))
    json.dump(manifest, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    transformers.logging.set_verbosity_error()
    main()
