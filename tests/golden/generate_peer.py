#!/usr/bin/env python3
"""Greedy generation with transformers itself: the peer of tests/torch/generate_parity_test.cpp.

For each job, loads the checkpoint directory with AutoModelForCausalLM (float32, CPU, the given
attention implementation), left-pads the job's prompts with pad_id into one batch (attention
mask 0 on the padding, as a tokenizer with padding_side="left" does) and runs
`model.generate(do_sample=False, max_new_tokens=N, use_cache=True)`. The checkpoint's
generation config names no eos token, so every row runs the full N steps.

Jobs (a JSON file): [{"model": DIR, "prompts": [[ids], ...], "max_new_tokens": N, "pad_id": P,
"attn": "eager"|"sdpa"}, ...]. Prints one JSON line per job, in order:
  {"model", "attn", "tokens": [[generated ids of prompt i], ...],
   "min_margin": smallest gap between the top two logits over every greedy step and row,
   "torch", "transformers"}

Usage: python generate_peer.py --jobs JOBS.json [--threads N]
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402


def left_pad(prompts, pad_id):
    """[B, L] ids and attention mask, each prompt in the last len(prompt) columns."""
    length = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, length - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[r, length - len(p):] = 1
    return ids, mask


def run(job):
    import transformers
    from transformers import AutoModelForCausalLM

    prompts = job["prompts"]
    if not prompts or any(not p for p in prompts):
        sys.exit("generate_peer: every prompt must be non-empty")
    attn = job.get("attn", "eager")
    model = AutoModelForCausalLM.from_pretrained(job["model"], attn_implementation=attn,
                                                 dtype=torch.float32).eval()
    pad_id = int(job.get("pad_id", 0))
    ids, mask = left_pad(prompts, pad_id)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                             max_new_tokens=int(job["max_new_tokens"]), use_cache=True,
                             pad_token_id=pad_id, return_dict_in_generate=True,
                             output_logits=True)
    generated = out.sequences[:, ids.shape[1]:]
    margin = float("inf")
    for step_logits in out.logits:  # [B, vocab] per step, before any processor
        top2 = step_logits.float().topk(2, dim=-1).values
        margin = min(margin, float((top2[:, 0] - top2[:, 1]).min()))
    return {"model": job["model"], "attn": attn, "tokens": generated.tolist(),
            "min_margin": margin, "torch": torch.__version__,
            "transformers": transformers.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", required=True)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    with open(a.jobs) as f:
        jobs = json.load(f)
    for job in jobs:
        print(json.dumps(run(job)), flush=True)


if __name__ == "__main__":
    main()
