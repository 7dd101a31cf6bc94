#!/usr/bin/env python3
"""Batched greedy generation time of transformers: the Python side of `audit bench generate`
(reproduce/cli_torch/cmd_bench.cpp).

Two steps, each one invocation:

  --make DIR      builds a Qwen2ForCausalLM of the given shapes with transformers itself (seeded
                  random init, float32) and writes it to DIR with save_pretrained, so that the C++
                  side loads the very same weights. Prints {"params", "dir"}.
  --model DIR --prompts FILE
                  times `model.generate(do_sample=False, use_cache=True, max_new_tokens=N)` on
                  each batch of FILE ({"batches": [[[ids], ...], ...]}, each batch left-padded
                  with pad id 0 and its attention mask, as a left-padding tokenizer makes it), with
                  each attention implementation in --attn, after --warmup untimed calls, --repeats
                  timed ones (median). The checkpoint names no eos token: every call generates
                  exactly N tokens per row.
                  Prints {"torch", "transformers", "threads", "results": [{"attn", "batch",
                  "median_s", "samples", "cpu_median_s", "cpu_samples", "tokens"}, ...]} on one
                  line (cpu: process CPU time, which other processes on the machine disturb less).
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402


def make(a):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(a.seed)
    cfg = Qwen2Config(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      head_dim=a.head_dim, intermediate_size=a.ffn, rope_theta=a.rope_theta,
                      max_position_embeddings=32768, tie_word_embeddings=not a.untied,
                      rms_norm_eps=1e-6)
    model = Qwen2ForCausalLM(cfg).float().eval()
    model.save_pretrained(a.make)
    print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "dir": a.make}))


def left_pad(prompts):
    length = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), length), dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, length - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[r, length - len(p):] = 1
    return ids, mask


def bench(a):
    import transformers
    from transformers import AutoModelForCausalLM

    with open(a.prompts) as f:
        batches = json.load(f)["batches"]
    out = {"torch": torch.__version__, "transformers": transformers.__version__,
           "threads": torch.get_num_threads(), "results": []}
    for attn in a.attn.split(","):
        model = AutoModelForCausalLM.from_pretrained(a.model, attn_implementation=attn,
                                                     dtype=torch.float32).eval()
        for prompts in batches:
            ids, mask = left_pad(prompts)
            samples, cpu = [], []
            with torch.no_grad():
                for i in range(a.warmup + a.repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    seqs = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                          max_new_tokens=a.max_new_tokens, use_cache=True,
                                          pad_token_id=0)
                    dt, dc = time.perf_counter() - t0, time.process_time() - c0
                    if i >= a.warmup:
                        samples.append(dt)
                        cpu.append(dc)
            generated = seqs[:, ids.shape[1]:]
            assert generated.shape == (len(prompts), a.max_new_tokens), generated.shape
            out["results"].append({"attn": attn, "batch": len(prompts),
                                   "median_s": statistics.median(samples), "samples": samples,
                                   "cpu_median_s": statistics.median(cpu), "cpu_samples": cpu,
                                   "tokens": generated.tolist()})
        del model
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--make", help="write a random checkpoint of these shapes to this folder")
    ap.add_argument("--model", help="the checkpoint folder to time")
    ap.add_argument("--prompts", help="JSON file {\"batches\": [[[ids], ...], ...]}")
    for k, v in [("vocab", 1000), ("hidden", 64), ("layers", 2), ("heads", 4), ("kv-heads", 2),
                 ("head-dim", 16), ("ffn", 128), ("max-new-tokens", 64), ("warmup", 1),
                 ("repeats", 3), ("threads", 0), ("seed", 0)]:
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--rope-theta", type=float, default=1000000.0)
    ap.add_argument("--untied", action="store_true", help="separate lm_head (default: tied)")
    ap.add_argument("--attn", default="eager,sdpa", help="comma-separated implementations")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.make:
        make(a)
    elif a.model and a.prompts:
        bench(a)
    else:
        ap.error("give --make DIR, or --model DIR and --prompts FILE")


if __name__ == "__main__":
    main()
