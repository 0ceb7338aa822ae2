"""Press mode: a context's KV cache compressed by a press, and the continuation read from it.

The first ``C`` token ids are the context, read with full attention; a press then keeps, per layer and
KV head, some of its positions.  The continuation (the rest, up to the token cap) is teacher-forced in
one pass at positions ``C, C+1, ...``, attending to the kept context positions and to its own keys, as
kvpress's pipeline does.  Dropping a key from a cache and masking it out give the same attention, so the
continuation runs through the packed engine with the context's rows taken from the full run (the context
pass *is* the full run's first ``C`` tokens) and a keep mask of the kept positions.

Quality is measured against the full run over the continuation's targets: the predictions made at
positions ``C-1 .. n-2`` (the first from the context's last position, read before compression: KL 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..budget import Budget, BudgetError
from ..policies.base import Policy
from ..presses import Press, PressView
from .metrics import Quality
from .passes import budget_pass
from .reference import Reference

__all__ = ["PressRow", "press_views", "kept_positions", "press_pass", "policy_press_pass", "check_context"]


@dataclass
class PressRow:
    """One press at one ratio: what it kept (counted) and the continuation's quality (measured).

    ``kept_mask`` bool ``(layers, kv_heads, C)``; ``kept`` the mean kept positions per layer and KV head;
    ``top1`` ``(n-C,)`` the pressed model's predicted next token at positions ``C-1 .. n-2``.
    """

    press: Press | None
    ratio: float
    context: int
    kept_mask: torch.Tensor | None
    quality: Quality
    kv_bytes: int
    kv_bytes_full: int
    seconds: float
    top1: torch.Tensor | None = None
    budget: Budget | None = None

    @property
    def kept(self) -> float:
        """Mean context positions kept per layer and KV head (a policy: its cache size, at most C)."""
        if self.kept_mask is None:
            return float(min(self.budget.policy.cache_size(self.budget, self.context), self.context))
        return float(self.kept_mask.sum(-1).double().mean())

    @property
    def label(self) -> str:
        """``snapkv r=0.75``, or a policy's budget label (``window K=32``)."""
        if self.press is None:
            return self.budget.label
        return " ".join([self.press.name, f"r={self.ratio:g}", *self.press.param_labels()])

    def to_json(self, positions: bool = False) -> dict:
        """The row of ``python -m attnviz press --json`` (``positions``: every kept position, per layer and head)."""
        q = self.quality
        if self.press is None:  # one of our evicting policies, reading the context as in Generate
            row = {"policy": self.budget.name, "keys": self.budget.keys, "params": self.budget.policy.params()}
        else:
            row = {"press": self.press.name, "compression_ratio": self.ratio, "params": self.press.params()}
        row.update({
               "kept": self.kept, "kept_full": self.context,
               "quality": {"kl": q.kl, "top1": q.top1, "ppl": q.ppl, "ppl_full": q.ppl_full},
               "compute": {"kv_bytes": self.kv_bytes, "kv_bytes_full": self.kv_bytes_full, "seconds": self.seconds}})
        if positions and self.kept_mask is not None:
            row["kept_positions"] = [[torch.nonzero(h).flatten().tolist() for h in layer] for layer in self.kept_mask]
        return row


def check_context(context: int, n_tokens: int, presses: Sequence[Press] = ()) -> None:
    """Raise :class:`BudgetError` (one line) unless ``1 <= C < n`` and every press can score ``C`` tokens."""
    if context < 1 or context >= n_tokens:
        raise BudgetError(f"the context must be at least 1 token and shorter than the text ({n_tokens} tokens), "
                          f"got C={context}")
    for press in presses:
        press.validate(context)


def press_views(lm, ref: Reference, context: int) -> list[PressView]:
    """Each layer's context as the full run read it (keys, values, queries), for presses to score."""
    if ref.kv is None or ref.queries is None:
        raise ValueError("pressing needs a causal model's reference made for budgets (its keys and queries)")
    inner = lm.model.model
    scaling = float(getattr(inner.layers[0].self_attn, "scaling", ref.kv[0][0].shape[-1] ** -0.5))
    probe = ref.kv[0][0]

    def rotary(positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cos, sin = inner.rotary_emb(probe, positions.view(1, -1))
        return cos[0].float(), sin[0].float()

    layers = len(ref.kv)
    return [PressView(layer=layer, layers=layers, keys=k[0, :, :context], values=v[0, :, :context],
                      queries=ref.queries[layer][0, :, :context] / scaling, scaling=scaling, rotary=rotary)
            for layer, (k, v) in enumerate(ref.kv)]


def kept_positions(press: Press, ratio: float, views: Sequence[PressView]) -> torch.Tensor:
    """bool ``(layers, kv_heads, C)``: what ``press`` keeps at compression ratio ``ratio`` (the share removed)."""
    with torch.inference_mode():
        return torch.stack([press.keep(view, ratio) for view in views])


@dataclass(frozen=True)
class _KeptContext(Policy):
    """Internal: the continuation's rows see the kept context positions and every continuation key."""

    name = "kept_context"
    summary = "The context positions a press kept, and the whole continuation."
    scores_all_pairs = False
    keeps_every_row = True
    evicts = True  # the cache at the end is the kept context plus the continuation
    ident: str = ""
    context: int = 0
    kept: torch.Tensor | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def parameters(cls):
        return ()

    def validate(self, budget, causal):
        if not causal:
            raise BudgetError("pressing a KV cache needs a causal model")

    def exact_prefix(self, budget, n_tokens):
        if bool(self.kept.all()):
            return n_tokens  # nothing removed: the full run itself
        return self.context  # the context is read before compression: the full run's rows

    def keep(self, scores, allowed, budget, view):
        k = allowed.shape[-1]
        mask = torch.cat([self.kept[view.layer], torch.ones(self.kept.shape[1], k - self.context, dtype=torch.bool)],
                         dim=1)
        return allowed & mask.repeat_interleave(view.group, dim=0).unsqueeze(1)

    default_keys: ClassVar[int | None] = None


def press_pass(lm, ref: Reference, context: int, runs: Sequence[tuple[Press, float]],
               progress: Callable[[int, int], None] | None = None) -> list[PressRow]:
    """Each ``(press, ratio)`` on ``ref``'s text with its first ``context`` tokens as the context.

    Raises :class:`BudgetError` (one line) for a context the text or a press cannot take, or a ratio outside
    [0, 1).  The presses score from the full run's keys, values and queries (no forward); the continuations
    of every run go through packed passes (:func:`~attnviz.measure.passes.budget_pass`).
    """
    if not lm.causal:
        raise BudgetError("pressing a KV cache needs a causal model")
    check_context(context, ref.n_tokens, [p for p, _ in runs])
    for _, ratio in runs:
        if not (0.0 <= ratio < 1.0) or math.isnan(ratio):
            raise BudgetError(f"a compression ratio is the share removed, in [0, 1), got {ratio}")
    views = press_views(lm, ref, context)
    masks = [kept_positions(press, ratio, views) for press, ratio in runs]
    budgets = [Budget(_KeptContext(ident=f"{i}:{press!r}:{ratio}", context=context, kept=mask))
               for i, ((press, ratio), mask) in enumerate(zip(runs, masks, strict=True))]
    rows = budget_pass(lm, ref, budgets, progress=progress, first=context - 1)
    out = []
    for (press, ratio), mask, row in zip(runs, masks, rows, strict=True):
        top1 = row.top1[context - 1:] if row.top1 is not None else None
        out.append(PressRow(press=press, ratio=ratio, context=context, kept_mask=mask,
                            quality=row.quality,
                            kv_bytes=row.compute.kv_bytes, kv_bytes_full=row.compute.kv_bytes_full,
                            seconds=row.compute.seconds, top1=top1))
    return out


def policy_press_pass(lm, ref: Reference, context: int, budgets: Sequence[Budget],
                      progress: Callable[[int, int], None] | None = None) -> list[PressRow]:
    """Our evicting policies (``window``, ``sink_window``, ``h2o``) beside the presses: each reads the whole text
    evicting as it goes (as on the Generate page), and its quality counts the same predictions (``C-1 .. n-2``).

    Their cache holds ``K`` keys per KV head throughout (context *and* continuation), so ``kv_bytes`` is what a
    press's cache of ``kept + n - C`` keys is compared with.  ``kept_mask`` is the context positions held after
    reading the context for policies that choose by position (None for ``h2o``, whose choice depends on its pass).
    """
    if not lm.causal:
        raise BudgetError("pressing a KV cache needs a causal model")
    check_context(context, ref.n_tokens)
    for b in budgets:
        if not b.policy.evicts:
            raise BudgetError(f"policy '{b.name}' keeps the whole KV cache: only evicting policies stand beside "
                              "the presses")
    rows = budget_pass(lm, ref, budgets, progress=progress, first=context - 1)
    kv_heads = ref.kv[0][0].shape[1]
    out = []
    for b, row in zip(budgets, rows, strict=True):
        mask = None
        if not b.policy.decode_needs_attention:
            from ..policies import LayerView

            held, _ = b.policy.prompt_cache(b, context, kv_heads, LayerView(layer=0, causal=True, group=1))
            mask = held.unsqueeze(0).expand(len(ref.kv), -1, -1).clone()
        out.append(PressRow(press=None, ratio=1 - min(1.0, b.policy.cache_size(b, context) / context),
                            context=context, kept_mask=mask, quality=row.quality, kv_bytes=row.compute.kv_bytes,
                            kv_bytes_full=row.compute.kv_bytes_full, seconds=row.compute.seconds,
                            top1=row.top1[context - 1:] if row.top1 is not None else None, budget=b))
    return out
