#!/usr/bin/env python3
"""SFT train-step throughput of transformers' Qwen2ForCausalLM in PyTorch eager: the Python side
of `audit bench train`.

The same work as audit::train::measure_train_throughput (reproduce/trainer/trainer.cpp) on the
same shapes, done the way HF's Trainer does it: Qwen2ForCausalLM (fp32) with
attn_implementation "eager" and/or "sdpa", its own causal-LM loss (labels = input ids, every
target counted), backward, torch.nn.utils.clip_grad_norm_(1.0), torch.optim.AdamW(0.9, 0.95,
eps 1e-8) with HF Trainer's decay groups (weight decay 1e-4, none on biases and norms) and
fused=True (HF's default optimizer "adamw_torch_fused" for torch >= 2.8), zero_grad(set_to_none),
one loss.item() per step; random tokens, normal(0, 0.02) weights. --bf16 (CUDA): bf16 autocast
around forward and loss, as HF Trainer's bf16=True and our trainer's precision "bf16".

Timing is the median step (the C++ side does the same). Prints one JSON object with, for each
attention implementation asked for, {"tokens_per_s", "seconds_per_step", "cpu_seconds",
"final_loss"} under its name, and "steps", "tokens_per_step", "threads", "device", "params",
"torch_version", "transformers_version".
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch


def build(a, attn):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      head_dim=a.head_dim, intermediate_size=a.ffn, rope_theta=a.rope_theta,
                      max_position_embeddings=max(2048, a.seq), tie_word_embeddings=False,
                      use_cache=False)
    cfg._attn_implementation = attn
    torch.manual_seed(a.seed)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
    return model


def time_one(a, attn, tokens):
    from transformers import Trainer
    device = torch.device(a.device)
    model = build(a, attn).to(device).train()
    decay = set(Trainer.get_decay_parameter_names(None, model))
    groups = [{"params": [p for n, p in model.named_parameters() if n in decay],
               "weight_decay": 1e-4},
              {"params": [p for n, p in model.named_parameters() if n not in decay],
               "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=True)
    params = list(model.parameters())
    ids = tokens.to(device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=a.bf16):
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss.item()

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
    return {"tokens_per_s": n / median, "seconds_per_step": median, "cpu_seconds": cpu_seconds,
            "final_loss": loss}, sum(p.numel() for p in model.parameters())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k, v in [("vocab", 272), ("hidden", 128), ("layers", 4), ("heads", 8), ("kv-heads", 2),
                 ("head-dim", 16), ("ffn", 384), ("batch", 16), ("seq", 256), ("warmup", 2),
                 ("steps", 5), ("threads", 0), ("seed", 0)]:
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--attn", default="eager,sdpa", help="comma-separated: eager, sdpa")
    ap.add_argument("--bf16", action="store_true",
                    help="bf16 autocast around forward and loss (CUDA), as HF Trainer's bf16=True")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    import transformers
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq), generator=torch.Generator().manual_seed(a.seed + 1))
    result = {"steps": a.steps, "tokens_per_step": a.batch * a.seq,
              "threads": torch.get_num_threads(), "device": a.device,
              "torch_version": torch.__version__, "transformers_version": transformers.__version__}
    for attn in [s for s in a.attn.split(",") if s]:
        result[attn], result["params"] = time_one(a, attn, tokens)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
