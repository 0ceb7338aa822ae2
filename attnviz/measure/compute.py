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

import dataclasses
from dataclasses import dataclass

import torch

from ..engine.run import RowStats

__all__ = ["Shape", "Compute", "model_shape", "linear_params", "compute_costs", "pair_flops", "linear_flops"]


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


@dataclass(frozen=True)
class Compute:
    """A budgeted run's compute and memory against the full run's: counted from the formulas above, except
    ``seconds``, the measured wall time of its (masked, so not faster) forward.  ``kv_bytes`` are None for
    encoders, which have no KV cache."""

    attn_pairs: int
    attn_pairs_full: int
    attn_flops: int
    attn_flops_full: int
    total_flops: int
    total_flops_full: int
    kv_bytes: int | None
    kv_bytes_full: int | None
    seconds: float

    def to_json(self) -> dict[str, float | int | None]:
        """The ``compute`` block of a result row."""
        return dataclasses.asdict(self)


def pair_flops(d_head: int, scored_pairs: int, kept_pairs: int) -> int:
    """Attention FLOPs: ``2·d`` per score ``q·k`` computed and ``2·d`` per value mixed in."""
    return 2 * d_head * (scored_pairs + kept_pairs)


def linear_flops(linear_params: int, n_tokens: int) -> int:
    """FLOPs of every linear layer over ``n_tokens``: ``2·P_linear·n``."""
    return 2 * linear_params * n_tokens


def compute_costs(stats: RowStats, full: RowStats, shape: Shape, dense_params: int, n_tokens: int,
                  causal: bool, seconds: float) -> Compute:
    """A run's :class:`Compute` from its counts and the full run's (see the module docstring for formulas)."""
    d = shape.d_head
    dense = linear_flops(dense_params, n_tokens)
    attn = pair_flops(d, stats.scored_pairs, stats.kept_pairs)
    attn_full = pair_flops(d, full.allowed_pairs, full.allowed_pairs)
    kv = (lambda keys: keys * 2 * d * shape.bytes_per_value) if causal else (lambda keys: None)
    return Compute(attn_pairs=stats.kept_pairs, attn_pairs_full=full.allowed_pairs, attn_flops=attn,
                   attn_flops_full=attn_full, total_flops=dense + attn, total_flops_full=dense + attn_full,
                   kv_bytes=kv(stats.kv_keys), kv_bytes_full=kv(full.kv_keys), seconds=seconds)
