"""Compute and memory, counted from stated formulas (never timed guesses).

For a text of ``n`` tokens and a model with ``L`` layers, ``H`` query heads,
``H_kv`` KV heads and head size ``d``:

* a *pair* is one (query, key) in one layer and one query head;
  ``attn_pairs`` counts kept pairs, ``attn_pairs_full`` the pairs the model's
  own mask allows, ``density = attn_pairs / attn_pairs_full``;
* ``attn_flops = 2·d·scored_pairs + 2·d·kept_pairs``: a score ``q·k`` costs
  ``2d`` FLOPs and so does mixing one value in.  Oracle policies (topk, topp)
  must score every allowed pair; others score only what they keep;
* ``dense_flops = 2 · P_linear · n`` with ``P_linear`` the parameters of every
  projection, MLP and output layer (the output layer counted even when it is
  tied to the embedding);
* ``total_flops = dense_flops + attn_flops``;
* ``kv_bytes = kv_keys · 2 · d · bytes_per_value`` -- keys and values cached at
  the end of the text, ``kv_keys`` summed over layers and KV heads.  Only
  policies that never need a dropped key again (window, sink_window, h2o)
  shrink it; encoders have no KV cache (None).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .budget_context import RowStats

__all__ = ["Shape", "model_shape", "linear_params", "compute_costs"]


@dataclass(frozen=True)
class Shape:
    layers: int
    q_heads: int
    kv_heads: int
    d_head: int
    bytes_per_value: int


def model_shape(model: torch.nn.Module) -> Shape:
    """Attention dimensions read from the model's config."""
    cfg = model.config
    heads = cfg.num_attention_heads
    d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    dtype = next(model.parameters()).dtype
    return Shape(cfg.num_hidden_layers, heads, kv, d_head, torch.finfo(dtype).bits // 8)


def linear_params(model: torch.nn.Module) -> int:
    """Parameters of every linear map a token goes through (projections, MLP, output layer).

    Embedding lookups cost no FLOPs; a pooler (BERT's, unused here) is skipped.
    Tied weights count once per use: the output layer is a separate module even
    when its weight is the embedding's.
    """
    from transformers.pytorch_utils import Conv1D  # GPT-2's linear layers

    total = 0
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, Conv1D)) and "pooler" not in name:
            total += mod.weight.numel() + (mod.bias.numel() if mod.bias is not None else 0)
    return total


def compute_costs(stats: RowStats, full: RowStats, shape: Shape, dense_params: int, n_tokens: int,
                  causal: bool, seconds: float) -> dict[str, float | int | None]:
    """The ``compute`` block of a result row (see the module docstring for formulas)."""
    d = shape.d_head
    dense = 2 * dense_params * n_tokens
    attn = 2 * d * (stats.scored_pairs + stats.kept_pairs)
    attn_full = 4 * d * full.allowed_pairs
    kv = (lambda keys: keys * 2 * d * shape.bytes_per_value) if causal else (lambda keys: None)
    return {
        "attn_pairs": stats.kept_pairs,
        "attn_pairs_full": full.allowed_pairs,
        "attn_flops": attn,
        "attn_flops_full": attn_full,
        "total_flops": dense + attn,
        "total_flops_full": dense + attn_full,
        "kv_bytes": kv(stats.kv_keys),
        "kv_bytes_full": kv(full.kv_keys),
        "seconds": seconds,
    }
