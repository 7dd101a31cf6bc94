#!/usr/bin/env python3
"""The Qwen2 decoder in plain PyTorch eager, for the benchmarks' Python side (bench_train.py,
bench_layer.py): the same model and ops as the C++ one, so that a throughput ratio compares the
two frameworks on the same work.

Written the way Hugging Face's modeling_qwen2.py is (eager attention with repeat_kv and an
additive mask, rotate_half rotary embeddings, fp32 RMSNorm, SwiGLU); use_fused_norms swaps in
F.rms_norm as the C++ model uses at::rms_norm. It is NOT the correctness reference: the model's
parity is checked against transformers itself (tests/torch/hf_parity_test.cpp through
hf_forward_peer.py).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from dataclasses import dataclass
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

