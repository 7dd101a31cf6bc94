#!/usr/bin/env python3
"""Forward-pass time of transformers' Qwen2ForCausalLM on random weights: the Python side of
`audit bench forward` (reproduce/cli_torch/cmd_bench.cpp).

Builds the model from the given shapes with transformers itself (random init, float32, CPU),
then times full forward passes (all positions' logits, no KV cache, torch.no_grad) of one
[batch, seq] block of random ids with each requested attention implementation ("eager", "sdpa")
on the same weights. Timing is the median of --repeats passes after --warmup untimed ones.

Prints one JSON object: {"params", "threads", "seq", "batch", "torch", "transformers",
"<attn>_median_s", "<attn>_samples" for each attention implementation} (flat: the C++ side
reads the last JSON object printed).
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k, v in [("vocab", 151936), ("hidden", 896), ("layers", 24), ("heads", 14), ("kv-heads", 2),
                 ("head-dim", 64), ("ffn", 4864), ("batch", 1), ("seq", 512), ("warmup", 1),
                 ("repeats", 5), ("threads", 0), ("seed", 0)]:
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--rope-theta", type=float, default=1000000.0)
    ap.add_argument("--untied", action="store_true", help="separate lm_head (default: tied)")
    ap.add_argument("--attn", default="eager,sdpa", help="comma-separated implementations")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    import transformers
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(a.seed)
    cfg = Qwen2Config(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                      num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      head_dim=a.head_dim, intermediate_size=a.ffn, rope_theta=a.rope_theta,
                      max_position_embeddings=max(a.seq, 32768), tie_word_embeddings=not a.untied,
                      use_cache=False)
    model = Qwen2ForCausalLM(cfg).float().eval()
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    out = {"params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
           "seq": a.seq, "batch": a.batch, "torch": torch.__version__,
           "transformers": transformers.__version__}
    for attn in a.attn.split(","):
        model.set_attn_implementation(attn)
        samples = []
        with torch.no_grad():
            for i in range(a.warmup + a.repeats):
                t0 = time.perf_counter()
                logits = model(input_ids=ids, use_cache=False).logits
                dt = time.perf_counter() - t0
                if i >= a.warmup:
                    samples.append(dt)
        assert logits.shape == (a.batch, a.seq, a.vocab)
        out[attn + "_median_s"] = statistics.median(samples)
        out[attn + "_samples"] = samples
    print(json.dumps(out))


if __name__ == "__main__":
    main()
