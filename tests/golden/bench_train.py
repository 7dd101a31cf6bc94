#!/usr/bin/env python3
"""Train-step throughput of the Qwen2 model in PyTorch eager: the Python side of `audit bench train`.

It times the same work as audit::train::measure_train_throughput (reproduce/trainer/trainer.cpp),
op for op: embedding, fused RMSNorm (F.rms_norm, as the C++ model uses at::rms_norm), rotary
embeddings, GQA through repeat + SDPA is_causal, SwiGLU, masked cross-entropy (sum / targets),
backward, clip_grad_norm_(1.0), AdamW(0.9, 0.95, wd 1e-4 on matrices only), one loss.item() per
step; random tokens, every target counted. --hf-style uses HF's unfused RMSNorm instead.

Timing is the median step (the C++ side does the same). Prints one JSON object:
{"tokens_per_s", "seconds_per_step", "steps", "tokens_per_step", "cpu_seconds",
"threads", "device", "final_loss", "params"}.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qwen2_eager import Qwen2Config, Qwen2ForCausalLM, use_fused_norms  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k, v in [("vocab", 272), ("hidden", 128), ("layers", 4), ("heads", 8), ("kv-heads", 2),
                 ("head-dim", 16), ("ffn", 384), ("batch", 16), ("seq", 256), ("warmup", 2),
                 ("steps", 5), ("threads", 0), ("seed", 0)]:
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hf-style", action="store_true", help="HF's unfused RMSNorm")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    c = Qwen2Config(vocab=a.vocab, hidden=a.hidden, layers=a.layers, heads=a.heads,
                    kv_heads=a.kv_heads, head_dim=a.head_dim, ffn=a.ffn, rope_theta=a.rope_theta)
    model = Qwen2ForCausalLM(c, attn_impl="sdpa")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
    if not a.hf_style:
        use_fused_norms(model)
    device = torch.device(a.device)
    model.to(device).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq))
    loss_mask = torch.ones(a.batch, a.seq, dtype=torch.long)
    params = list(model.parameters())

    def step():
        idx = torch.arange(a.batch)
        ids = tokens.index_select(0, idx).to(device)
        mask = loss_mask.index_select(0, idx).to(device)
        normalizer = max(1.0, (mask[:, 1:] != 0).sum().item())
        opt.zero_grad(set_to_none=True)
        logits = model(ids)
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, a.vocab).float(), targets.reshape(-1),
                               ignore_index=-100, reduction="sum") / normalizer
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    loss, times = 0.0, []
    cpu0 = time.process_time()
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    cpu_seconds = time.process_time() - cpu0
    median = statistics.median(times)  # robust to other processes stealing the CPU, as the C++ side
    n = a.batch * a.seq
    print(json.dumps({"tokens_per_s": n / median, "seconds_per_step": median,
                      "steps": a.steps, "tokens_per_step": n, "cpu_seconds": cpu_seconds, "threads": torch.get_num_threads(),
                      "device": a.device, "final_loss": loss,
                      "params": sum(p.numel() for p in model.parameters()),
                      "torch_version": torch.__version__, "hf_style": a.hf_style}))


if __name__ == "__main__":
    main()
