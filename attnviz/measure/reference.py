"""The full-attention run of a text: what every budget is compared against.

:func:`reference_pass` runs full attention once through our own kernel and
keeps what budgets need (the full run's next-token facts, its KV cache and
queries, captured weights); :func:`attention_weights` is a lighter pass for
pictures alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

from ..budget import Budget
from ..engine.run import BudgetRun, RowStats
from ..engine.trunk import cache_tensors, run_trunk, trunk_and_head
from ..text import DEFAULT_MAX_TOKENS, Encoded, encode
from .compute import Shape, linear_params, model_shape
from .metrics import FullNext, FullTerms, full_next

__all__ = ["Reference", "Capture", "encode_for", "reference_pass", "attention_weights", "full_next_of"]

Capture = str | Iterable[int] | None
"""Layers whose weights a pass keeps: ``"all"``, layer indices, or None."""


@dataclass
class Reference:
    """The full-attention run of one text (cache it: every budget is compared to it).

    ``next`` (causal, made for budgets): what budgets are compared against from the full
    run's next-token distributions at positions 0..n-2 (:class:`~attnviz.measure.metrics.FullNext`;
    the ``(n-1, vocab)`` log-probabilities themselves are not kept).  ``hidden`` ``(n, hidden)``: last hidden states
    (an encoder's output; a causal model's output layer input).  ``weights`` maps captured layers to float16
    ``(q_heads, n, n)`` attention weights.  ``kv`` is the full run's KV cache
    (causal only), one ``(keys, values)`` pair per layer, each
    ``(1, kv_heads, n, d_head)``: budgets reuse its exact prefix.  ``queries``
    (causal only) the full run's scaled queries per layer, ``(1, q_heads, n, d_head)``:
    a policy that decides from earlier rows' attention (``h2o``) scores its prefix with them.
    """

    lm: object
    encoded: Encoded
    next: FullNext | None
    hidden: torch.Tensor | None
    stats: RowStats
    seconds: float
    shape: Shape
    dense_params: int
    weights: dict[int, torch.Tensor] = field(default_factory=dict)
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    queries: list[torch.Tensor] | None = None
    _demand: object = field(default=None, repr=False)  # memo of attnviz.allocators.demand.demand_of_reference

    @property
    def ids(self) -> torch.Tensor:
        return self.encoded.ids

    @property
    def n_tokens(self) -> int:
        return self.encoded.n_tokens

    @property
    def top1(self) -> torch.Tensor | None:
        """The full model's predicted next token at positions 0..n-2 (causal only)."""
        return None if self.next is None else self.next.top1

    @property
    def full_terms(self) -> FullTerms | None:
        """What budgets' KL needs from the full run's next-token distributions, per position (causal only)."""
        return None if self.next is None else self.next.terms

    @property
    def ppl_full(self) -> float | None:
        """The full model's perplexity on the text (causal only)."""
        return None if self.next is None else self.next.ppl


def encode_for(lm, text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> Encoded:
    """Tokenize for ``lm``, capped at ``max_tokens`` and the model's own limit.

    Causal models need two tokens (one prediction); encoders one.
    """
    return encode(lm.tokenizer, text, max_tokens, lm.max_positions, min_tokens=2 if lm.causal else 1)


def reference_pass(lm, encoded: Encoded, capture: Capture = None, observers: Sequence = (),
                   for_budgets: bool = True) -> Reference:
    """Full attention through our kernel (equal to transformers' eager attention).

    ``observers`` see every layer's weights (see :class:`~attnviz.engine.run.BudgetRun`).
    ``for_budgets=False`` skips what only budgets are compared against (the full run's
    next-token facts, an output-layer pass, and the KV cache, 47 MB at 1024 tokens):
    for pictures of the full attention alone.
    """
    keep = lm.causal and for_budgets
    run = BudgetRun([Budget("full")], causal=lm.causal, capture=capture, observers=observers, keep_queries=keep)
    hidden, cache, seconds = run_trunk(lm.model, encoded.ids, run, keep_cache=keep)
    kv = cache_tensors(cache) if cache is not None else None
    t0 = time.perf_counter()
    nxt = full_next_of(lm, hidden[0], encoded.ids) if lm.causal and for_budgets else None
    seconds += time.perf_counter() - t0
    weights = {layer: w[0] for layer, w in run.weights.items()}
    return Reference(lm=lm, encoded=encoded, next=nxt, hidden=hidden[0],
                     stats=run.stats[0], seconds=seconds, shape=model_shape(lm.model),
                     dense_params=linear_params(lm.model), weights=weights, kv=kv,
                     queries=[run.queries[layer] for layer in sorted(run.queries)] if keep else None)


def full_next_of(lm, hidden: torch.Tensor, ids: torch.Tensor) -> FullNext:
    """The full run's next-token facts from its last hidden states ``(n, d)`` and token ids ``(1, n)``."""
    _, head = trunk_and_head(lm.model)
    return full_next(hidden[:-1], head.weight, head.bias, ids[0, 1:])


class _LastLayerDone(Exception):
    """Raised by an observer to end a forward once the last wanted layer is captured."""


def attention_weights(lm, encoded: Encoded, layers: Sequence[int] | None) -> dict[int, torch.Tensor]:
    """Float16 ``(q_heads, n, n)`` full-attention weights of ``layers`` (None: every layer).

    Lighter than :func:`reference_pass` for pictures: one trunk forward, no output
    layer (its log-probabilities alone are 200 MB at 1024 tokens), no KV cache,
    and it stops right after the last wanted layer.
    """
    last = None if layers is None else max(layers)

    def stop_after_last(layer, _weights, _keep) -> None:
        if layer == last:
            raise _LastLayerDone

    run = BudgetRun([Budget("full")], causal=lm.causal, capture="all" if layers is None else layers,
                    observers=[stop_after_last] if last is not None else [])
    try:
        run_trunk(lm.model, encoded.ids, run)
    except _LastLayerDone:
        pass
    return {layer: w[0] for layer, w in run.weights.items()}


