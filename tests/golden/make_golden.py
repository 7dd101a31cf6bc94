#!/usr/bin/env python3
"""Golden fixture for the C++ Qwen2 model (STYLE.md 2).

A clean, independent PyTorch implementation of the Qwen2 decoder, written the way Hugging Face's
modeling_qwen2.py is (eager attention with repeat_kv and an additive mask, rotate_half rotary
embeddings, fp32 RMSNorm, SwiGLU), run in float64 on fixed-seed weights. It writes, per model
configuration, one safetensors file holding:
  - the weights by HF name (float32), exactly the reference state_dict;
  - for each case (plain causal; packed with position_ids restarts): input_ids, loss_mask,
    position_ids (packed only), the expected logits, the loss and every named gradient.
The C++ test (tests/torch/model_test.cpp) loads the weights into audit::model::CausalLM, runs
forward and backward in float32 and compares tensor by tensor.

Loss convention (shared with reproduce/trainer/trainer.h): loss_mask[b, t] = 1 means token t is a
target; its prediction comes from position t - 1. Loss = mean cross-entropy over those targets,
computed here HF-style with labels = -100 outside the mask.

Usage: make_golden.py --out DIR   (writes DIR/qwen2_untied.safetensors, DIR/qwen2_tied.safetensors)
The safetensors writer is a few lines below; no safetensors package is needed.
"""
import argparse
import json
import math
import os
import struct
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Qwen2Config:
    vocab: int = 64
    hidden: int = 32
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 8
    ffn: int = 64
    rope_theta: float = 10000.0
    rms_eps: float = 1e-6
    qkv_bias: bool = True
    tie_embeddings: bool = False


class Qwen2RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32) if input_dtype != torch.float64 else hidden_states
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class FusedRMSNorm(nn.Module):
    """RMSNorm through F.rms_norm, as the C++ model uses at::rms_norm (the benchmark peers)."""

    def __init__(self, weight, eps):
        super().__init__()
        self.weight = weight
        self.eps = eps

    def forward(self, x):
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def use_fused_norms(module):
    """Replaces every Qwen2RMSNorm below `module` by a FusedRMSNorm with the same weight."""
    for name, child in module.named_children():
        if isinstance(child, Qwen2RMSNorm):
            setattr(module, name, FusedRMSNorm(child.weight, child.variance_epsilon))
        else:
            use_fused_norms(child)


class Qwen2RotaryEmbedding(nn.Module):
    def __init__(self, head_dim, base):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x, position_ids):
        inv_freq = self.inv_freq[None, :, None].to(x.dtype).expand(position_ids.shape[0], -1, 1)
        freqs = (inv_freq @ position_ids[:, None, :].to(x.dtype)).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(hidden_states, n_rep):
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class Qwen2Attention(nn.Module):
    def __init__(self, c: Qwen2Config, attn_impl="eager"):
        super().__init__()
        self.c, self.attn_impl = c, attn_impl
        self.num_key_value_groups = c.heads // c.kv_heads
        self.scaling = c.head_dim ** -0.5
        self.q_proj = nn.Linear(c.hidden, c.heads * c.head_dim, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden, c.kv_heads * c.head_dim, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden, c.kv_heads * c.head_dim, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.heads * c.head_dim, c.hidden, bias=False)

    def forward(self, hidden_states, position_embeddings, attention_mask):
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.c.head_dim)
        query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if self.attn_impl == "sdpa":
            # As HF's sdpa path on torch >= 2.5: GQA inside the kernel instead of repeat_kv.
            gqa = self.num_key_value_groups > 1
            if attention_mask is None:
                attn_output = F.scaled_dot_product_attention(query_states, key_states, value_states,
                                                             is_causal=True, enable_gqa=gqa)
            else:
                attn_output = F.scaled_dot_product_attention(query_states, key_states, value_states,
                                                             attn_mask=attention_mask, enable_gqa=gqa)
        else:
            key_states = repeat_kv(key_states, self.num_key_value_groups)
            value_states = repeat_kv(value_states, self.num_key_value_groups)
            # eager: additive mask with the dtype's most negative value, softmax in fp32 (or fp64)
            T = query_states.shape[2]
            if attention_mask is None:
                attention_mask = torch.ones(T, T, dtype=torch.bool, device=hidden_states.device).tril()[None, None]
            additive = torch.zeros(attention_mask.shape, dtype=query_states.dtype, device=hidden_states.device)
            additive = additive.masked_fill(~attention_mask, torch.finfo(query_states.dtype).min)
            attn_weights = torch.matmul(query_states, key_states.transpose(2, 3)) * self.scaling + additive
            softmax_dtype = torch.float64 if query_states.dtype == torch.float64 else torch.float32
            attn_weights = F.softmax(attn_weights, dim=-1, dtype=softmax_dtype).to(query_states.dtype)
            attn_output = torch.matmul(attn_weights, value_states)
        attn_output = attn_output.transpose(1, 2).reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output)


class Qwen2MLP(nn.Module):
    def __init__(self, c: Qwen2Config):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden, c.ffn, bias=False)
        self.up_proj = nn.Linear(c.hidden, c.ffn, bias=False)
        self.down_proj = nn.Linear(c.ffn, c.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen2DecoderLayer(nn.Module):
    def __init__(self, c: Qwen2Config, attn_impl="eager"):
        super().__init__()
        self.self_attn = Qwen2Attention(c, attn_impl)
        self.mlp = Qwen2MLP(c)
        self.input_layernorm = Qwen2RMSNorm(c.hidden, c.rms_eps)
        self.post_attention_layernorm = Qwen2RMSNorm(c.hidden, c.rms_eps)

    def forward(self, hidden_states, position_embeddings, attention_mask):
        residual = hidden_states
        hidden_states = self.input_layernorm(hidden_states)
        hidden_states = self.self_attn(hidden_states, position_embeddings, attention_mask)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.post_attention_layernorm(hidden_states)
        hidden_states = self.mlp(hidden_states)
        return residual + hidden_states


def segment_mask(position_ids):
    """Block-diagonal causal mask [B, 1, T, T] (True = may attend): a new segment starts wherever
    a position does not continue the previous one (what packed training with restarts needs)."""
    B, T = position_ids.shape
    starts = torch.ones_like(position_ids)
    starts[:, 1:] = (position_ids[:, 1:] != position_ids[:, :-1] + 1).long()
    seg = starts.cumsum(1)
    same = seg[:, :, None] == seg[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool, device=position_ids.device).tril()
    return (same & causal)[:, None]


class Qwen2Model(nn.Module):
    def __init__(self, c: Qwen2Config, attn_impl="eager"):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab, c.hidden)
        self.layers = nn.ModuleList([Qwen2DecoderLayer(c, attn_impl) for _ in range(c.layers)])
        self.norm = Qwen2RMSNorm(c.hidden, c.rms_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(c.head_dim, c.rope_theta)

    def forward(self, input_ids, position_ids=None):
        inputs_embeds = self.embed_tokens(input_ids)
        mask = None
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device)[None].expand_as(input_ids)
        else:
            mask = segment_mask(position_ids)
        hidden_states = inputs_embeds
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_embeddings, mask)
        return self.norm(hidden_states)


class Qwen2ForCausalLM(nn.Module):
    def __init__(self, c: Qwen2Config, attn_impl="eager"):
        super().__init__()
        self.config = c
        self.model = Qwen2Model(c, attn_impl)
        self.lm_head = nn.Linear(c.hidden, c.vocab, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids, position_ids=None):
        return self.lm_head(self.model(input_ids, position_ids))


def masked_loss(logits, input_ids, loss_mask):
    """HF-style: labels -100 outside the mask, shift by one, mean CE over the remaining targets."""
    labels = input_ids.masked_fill(loss_mask == 0, -100)
    shift_logits = logits[:, :-1, :].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)


# --- a tiny safetensors writer: 8-byte LE header length, JSON header, raw LE data ---------------
_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
           torch.bool: "BOOL", torch.uint8: "U8", torch.bfloat16: "BF16", torch.float16: "F16"}


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)  # atomic: parallel tests never see a half-written file


def seeded_weights(model, seed):
    """Fixed-seed weights, larger than the 0.02 init so every path (biases, norm scales) matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))


def make_cases(c: Qwen2Config, seed):
    g = torch.Generator().manual_seed(seed + 1)
    B, T = 2, 16
    input_ids = torch.randint(0, c.vocab, (B, T), generator=g)
    # Loss on "answer" tokens only: row 0 from t = 5, row 1 from t = 9 but not the last two.
    loss_mask = torch.zeros(B, T, dtype=torch.int64)
    loss_mask[0, 5:] = 1
    loss_mask[1, 9:T - 2] = 1
    # Packed: row 0 holds segments of 6 and 10 tokens, row 1 segments of 4, 7 and 5.
    position_ids = torch.cat([torch.cat([torch.arange(6), torch.arange(10)])[None],
                              torch.cat([torch.arange(4), torch.arange(7), torch.arange(5)])[None]])
    return {"plain": (input_ids, loss_mask, None), "packed": (input_ids, loss_mask, position_ids)}


def build_fixture(c: Qwen2Config, seed, path):
    model32 = Qwen2ForCausalLM(c)
    seeded_weights(model32, seed)
    state32 = {k: v.detach().clone() for k, v in model32.state_dict().items()}
    if c.tie_embeddings:
        state32.pop("lm_head.weight")  # HF omits the tied head from safetensors files
    out = dict(state32)
    model = Qwen2ForCausalLM(c).double()
    model.load_state_dict({k: v.double() for k, v in model32.state_dict().items()})
    for case, (input_ids, loss_mask, position_ids) in make_cases(c, seed).items():
        model.zero_grad(set_to_none=True)
        logits = model(input_ids, position_ids)
        loss = masked_loss(logits, input_ids, loss_mask)
        loss.backward()
        out[f"case.{case}.input_ids"] = input_ids
        out[f"case.{case}.loss_mask"] = loss_mask
        if position_ids is not None:
            out[f"case.{case}.position_ids"] = position_ids
        out[f"case.{case}.logits"] = logits.detach().float()
        out[f"case.{case}.loss"] = loss.detach().float()
        for name, p in model.named_parameters():
            out[f"case.{case}.grad.{name}"] = p.grad.detach().float()
    names = [[k, list(v.shape)] for k, v in state32.items()]
    meta = {"config": json.dumps(asdict(c)), "state_dict": json.dumps(names),
            "torch_version": torch.__version__, "seed": str(seed),
            "reference": "tests/golden/make_golden.py (HF-style eager Qwen2, float64)"}
    write_safetensors(path, out, meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for the fixture files")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    build_fixture(Qwen2Config(), 1234, os.path.join(args.out, "qwen2_untied.safetensors"))
    build_fixture(Qwen2Config(vocab=48, hidden=24, layers=1, heads=3, kv_heads=1, head_dim=8,
                              ffn=40, rope_theta=1e6, tie_embeddings=True, qkv_bias=True),
                  99, os.path.join(args.out, "qwen2_tied.safetensors"))


if __name__ == "__main__":
    main()
