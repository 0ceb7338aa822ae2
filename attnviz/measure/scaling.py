"""How attention's share of a forward pass's FLOPs grows with context length.

The formulas are those of :mod:`attnviz.measure.compute`, for a full pass over ``n``
tokens of a model with ``L`` layers, ``H`` query heads of size ``d``:

* attention: ``4·d·H·L·pairs`` with ``pairs = n(n+1)/2`` (causal) or ``n²``
  (encoder): ``2d`` FLOPs per score ``q·k`` and ``2d`` per value mixed in;
* dense: ``2·P_linear·n``, ``P_linear`` the parameters of every projection,
  MLP and output layer (the output layer counted even when tied).

Attention grows as ``n²``, dense as ``n``: the attention share is
``a(n+1) / (a(n+1) + 2·P_linear)`` with ``a = 2·d·H·L`` (causal), and equals
one half at ``n + 1 = P_linear / (d·H·L)`` tokens (:func:`crossover_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .compute import linear_flops, pair_flops

__all__ = [
    "ModelConfig", "KNOWN_CONFIGS", "config_from_model", "attention_flops", "dense_flops",
    "attention_share", "share_curve", "crossover_tokens", "topk_pairs", "topk_saving",
]


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a transformer, enough to count its FLOPs.

    ``mlp_matrices``: 3 for gated MLPs (Llama, Mistral: gate, up, down), 2 for
    GPT-2/BERT-style MLPs.  ``bias``: linear layers have biases (GPT-2, BERT).
    ``lm_head``: an output layer ``vocab × hidden`` is part of the pass (causal
    LMs; not a bare encoder).  ``exact_linear_params``: a count taken from a
    loaded model, which then replaces the formula.  ``source``: where the
    numbers come from.
    """

    name: str
    layers: int
    q_heads: int
    kv_heads: int
    d_head: int
    hidden: int
    intermediate: int
    vocab: int
    mlp_matrices: int = 3
    bias: bool = False
    lm_head: bool = True
    causal: bool = True
    source: str = ""
    exact_linear_params: int | None = None

    def linear_params(self) -> int:
        """``P_linear``: weights (and biases) of Q, K, V, O, the MLP and the output layer."""
        if self.exact_linear_params is not None:
            return self.exact_linear_params
        q, kv, h, m = self.q_heads * self.d_head, self.kv_heads * self.d_head, self.hidden, self.intermediate
        attn = h * q + 2 * h * kv + q * h
        mlp = self.mlp_matrices * h * m
        if self.bias:
            attn += q + 2 * kv + h
            mlp += (self.mlp_matrices - 1) * m + h
        return self.layers * (attn + mlp) + (self.vocab * h if self.lm_head else 0)


def _hf(repo: str) -> str:
    return f"config.json of {repo} on the Hugging Face hub"


KNOWN_CONFIGS: dict[str, ModelConfig] = {c.name: c for c in (
    ModelConfig("SmolLM2-135M", 30, 9, 3, 64, 576, 1536, 49152, source=_hf("HuggingFaceTB/SmolLM2-135M")),
    ModelConfig("GPT-2 small", 12, 12, 12, 64, 768, 3072, 50257, mlp_matrices=2, bias=True,
                source=_hf("openai-community/gpt2") + " (n_inner = 4 × n_embd)"),
    ModelConfig("Llama-2-7B", 32, 32, 32, 128, 4096, 11008, 32000, source=_hf("meta-llama/Llama-2-7b-hf")),
    ModelConfig("Llama-3-8B", 32, 32, 8, 128, 4096, 14336, 128256, source=_hf("meta-llama/Meta-Llama-3-8B")),
    ModelConfig("Mistral-7B", 32, 32, 8, 128, 4096, 14336, 32000, source=_hf("mistralai/Mistral-7B-v0.1")),
)}


def _is_causal_lm(model: torch.nn.Module) -> bool:
    cfg = model.config
    if getattr(cfg, "is_encoder_decoder", False):
        return False
    names = [type(model).__name__, *(getattr(cfg, "architectures", None) or [])]
    return bool(getattr(cfg, "is_decoder", False)) or any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in names)


def config_from_model(model, name: str | None = None, causal: bool | None = None) -> ModelConfig:
    """The :class:`ModelConfig` of a loaded model; ``P_linear`` counted exactly (by ``compute.linear_params``).

    ``model``: a transformers model, or a :class:`attnviz.models.LoadedModel`
    (whose ``causal`` and ``name`` are then used).  ``causal`` defaults to
    whether the model is a causal LM.
    """
    from .compute import linear_params, model_shape

    if hasattr(model, "model") and hasattr(model, "causal"):  # a LoadedModel
        name = name or model.name
        causal = model.causal if causal is None else causal
        model = model.model
    cfg = model.config
    shape = model_shape(model)
    hidden = getattr(cfg, "hidden_size", None) or cfg.n_embd
    intermediate = getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None) or 4 * hidden
    names = [n for n, _ in model.named_modules()]
    gated = any(n.endswith(("gate_proj", "gate_up_proj", ".w3")) for n in names)
    has_head = model.get_output_embeddings() is not None if hasattr(model, "get_output_embeddings") else False
    bias = any(getattr(m, "bias", None) is not None
               for n, m in model.named_modules() if n.endswith(("q_proj", "query", "c_attn")))
    return ModelConfig(
        name=name or getattr(cfg, "_name_or_path", "") or type(model).__name__,
        layers=shape.layers, q_heads=shape.q_heads, kv_heads=shape.kv_heads, d_head=shape.d_head,
        hidden=hidden, intermediate=intermediate, vocab=cfg.vocab_size, mlp_matrices=3 if gated else 2,
        bias=bias, lm_head=has_head, causal=_is_causal_lm(model) if causal is None else causal,
        source="the loaded model", exact_linear_params=linear_params(model),
    )


def _pairs(n: int | np.ndarray, causal: bool) -> int | np.ndarray:
    return n * (n + 1) // 2 if causal else n * n


def attention_flops(config: ModelConfig, n_tokens: int | np.ndarray) -> int | np.ndarray:
    """FLOPs of full attention over ``n_tokens`` (scores and value mixing, all layers and heads)."""
    pairs = config.q_heads * config.layers * _pairs(n_tokens, config.causal)
    return pair_flops(config.d_head, pairs, pairs)  # full attention scores every pair it keeps


def dense_flops(config: ModelConfig, n_tokens: int | np.ndarray) -> int | np.ndarray:
    """FLOPs of every linear layer over ``n_tokens``: ``2·P_linear·n``."""
    return linear_flops(config.linear_params(), n_tokens)


def attention_share(config: ModelConfig, n_tokens: int) -> float:
    """Attention FLOPs / total FLOPs of a full pass over ``n_tokens`` (a fraction in [0, 1))."""
    attn = attention_flops(config, int(n_tokens))
    return attn / (attn + dense_flops(config, int(n_tokens)))


def share_curve(config: ModelConfig, n_tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    """:func:`attention_share` at every length of ``n_tokens`` (float64 array of the same length)."""
    n = np.asarray(n_tokens, dtype=np.int64)
    attn = attention_flops(config, n).astype(np.float64)
    return attn / (attn + dense_flops(config, n))


CURVE_LENGTHS = np.unique(np.geomspace(64, 131072, 40).astype(np.int64))
"""Context lengths, 64 to 128k tokens evenly on a log scale, at which a share curve is drawn."""


def share_curves(configs: dict[str, ModelConfig], n_tokens: Sequence[int] | np.ndarray = CURVE_LENGTHS
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per named model, ``(lengths, attention share at each)``: the curves of the attention-share plot."""
    n = np.asarray(n_tokens, dtype=np.int64)
    return {name: (n, share_curve(cfg, n)) for name, cfg in configs.items()}


def crossover_tokens(config: ModelConfig) -> int:
    """The smallest context length at which attention costs at least as much as all linear layers."""
    per_pair = 4 * config.d_head * config.q_heads * config.layers
    p2 = 2 * config.linear_params()
    if config.causal:  # per_pair·n(n+1)/2 >= p2·n  <=>  n + 1 >= 2·p2 / per_pair
        return max(1, -(-2 * p2 // per_pair) - 1)
    return max(1, -(-p2 // per_pair))  # per_pair·n² >= p2·n


def topk_pairs(n_tokens: int, keys: int, causal: bool = True) -> int:
    """Query-key pairs one head of one layer keeps under top-k with ``keys`` per query over ``n_tokens``.

    Each query keeps ``min(keys, allowed)``: a causal query ``i`` (from 1) has ``i`` allowed keys, so
    the first ``keys`` queries keep all of theirs; an encoder query has ``n_tokens``.
    """
    n, k = int(n_tokens), max(1, int(keys))
    if not causal:
        return n * min(k, n)
    if n <= k:
        return n * (n + 1) // 2
    return k * (k + 1) // 2 + (n - k) * k


def topk_saving(config: ModelConfig, n_tokens: int, keys: int) -> tuple[float, float]:
    """``(attention saved, whole model saved)``: fractions of a full pass's FLOPs that top-k with ``keys``
    per query saves over ``n_tokens``.

    Top-k must score every allowed pair before choosing, so only the mixing of dropped pairs is saved:
    ``attention saved = (pairs − kept) / (2·pairs)`` (at most one half), and the whole model saves that
    times :func:`attention_share`.
    """
    pairs = int(_pairs(int(n_tokens), config.causal))
    kept = topk_pairs(n_tokens, keys, config.causal)
    attn_saved = 1 - pair_flops(1, pairs, kept) / pair_flops(1, pairs, pairs)  # compute.py's formula, per d
    return attn_saved, attn_saved * attention_share(config, n_tokens)
