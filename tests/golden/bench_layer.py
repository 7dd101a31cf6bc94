#!/usr/bin/env python3
"""Layer time of k Qwen2 decoder layers in PyTorch eager: the Python side of `audit replay
--compare-eager`.

It times the same work as the dense-layer timing of reproduce/replay_layers/replay_layers.cpp: k
Qwen2DecoderLayer modules (tests/golden/qwen2_eager.py, SDPA attention with GQA in the kernel,
fused F.rms_norm as the C++ model uses at::rms_norm) over a random fp32 input [batch, seq,
hidden], loss = mean(out.float()^2), backward; bf16 autocast on CUDA, fp32 on CPU. Gradients are
reset before every step; the optimizer is not timed here (the C++ side times it apart).

Timing is the median step divided by k. Prints one JSON object:
{"layer_s", "step_s", "steps", "layers", "seq", "batch", "threads", "device", "dtype", "samples"}.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qwen2_eager import (Qwen2Config, Qwen2DecoderLayer, Qwen2RotaryEmbedding,  # noqa: E402
                         use_fused_norms)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k, v in [("hidden", 128), ("layers", 1), ("heads", 8), ("kv-heads", 2), ("head-dim", 16),
                 ("ffn", 384), ("batch", 1), ("seq", 256), ("warmup", 2), ("steps", 5),
                 ("threads", 0), ("seed", 0), ("qkv-bias", 1)]:
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    c = Qwen2Config(hidden=a.hidden, layers=a.layers, heads=a.heads, kv_heads=a.kv_heads,
                    head_dim=a.head_dim, ffn=a.ffn, rope_theta=a.rope_theta, rms_eps=a.eps,
                    qkv_bias=bool(a.qkv_bias))
    layers = nn.ModuleList([Qwen2DecoderLayer(c, attn_impl="sdpa") for _ in range(a.layers)])
    use_fused_norms(layers)
    layers.to(device).train()
    rotary = Qwen2RotaryEmbedding(a.head_dim, a.rope_theta).to(device)
    x = torch.randn(a.batch, a.seq, a.hidden, device=device)
    pos = torch.arange(a.seq, device=device)[None]
    cos, sin = rotary(x, pos)
    autocast = device.type == "cuda"
    params = list(layers.parameters())
    samples = []
    for i in range(a.warmup + a.steps):
        for p in params:
            p.grad = None
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=autocast):
            h = x
            for layer in layers:
                h = layer(h, (cos, sin), None)
            loss = h.float().pow(2).mean()
        loss.backward()
        sync(device)
        if i >= a.warmup:
            samples.append(time.perf_counter() - t0)
    step = statistics.median(samples)
    print(json.dumps({"layer_s": step / a.layers, "step_s": step, "steps": a.steps,
                      "layers": a.layers, "seq": a.seq, "batch": a.batch,
                      "threads": torch.get_num_threads(), "device": a.device,
                      "dtype": "bf16 autocast" if autocast else "fp32",
                      "samples": [s / a.layers for s in samples]}))


if __name__ == "__main__":
    main()
