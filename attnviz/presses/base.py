"""The shared machinery every press builds on, as in NVIDIA kvpress.

A press compresses a context's KV cache after the context has been read with
full attention: per layer and KV head it scores every context position and keeps
the ``max(1, int(C·(1 − r)))`` best, where ``r`` is kvpress's
``compression_ratio`` (the share *removed*).  Like a policy, a press is a frozen
dataclass whose fields are its parameters, registered by name; its one job is
:meth:`Press.score`.  Everything it may read about a layer comes in a
:class:`PressView`, made from the full run (the context pass *is* the full run's
first ``C`` tokens, so pressing costs no extra forward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..budget import BudgetError
from ..params import Parametrised, check_values

__all__ = ["Press", "PressView", "kept_count", "rotate_half", "top_positions", "pad_max"]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[-x2, x1]`` for ``x = [x1, x2]`` along the last axis (the rotary embedding's pairing)."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def kept_count(context: int, ratio: float) -> int:
    """Positions a press keeps per layer and KV head: ``max(1, int(C·(1 − r)))`` (kvpress's count, at least 1)."""
    return max(1, int(context * (1 - ratio)))


@dataclass
class PressView:
    """One layer of the context, as the full run read it.

    ``keys``/``values`` ``(kv_heads, C, d)`` after the rotary embedding (as cached); ``queries``
    ``(q_heads, C, d)`` after it, unscaled; ``scaling`` the attention's score scale (``1/√d``);
    ``rotary(positions)`` the model's ``(cos, sin)``, each ``(len(positions), d)``; ``layers`` the model's
    depth; ``memo`` a per-call dict of this press's own.
    """

    layer: int
    layers: int
    keys: torch.Tensor
    values: torch.Tensor
    queries: torch.Tensor
    scaling: float
    rotary: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    memo: dict = field(default_factory=dict)

    @property
    def context(self) -> int:
        return self.keys.shape[1]

    @property
    def group(self) -> int:
        """Query heads per KV head."""
        return self.queries.shape[0] // self.keys.shape[0]

    def window_attention(self, window: int) -> torch.Tensor:
        """Causal softmax attention ``(q_heads, window, C)`` of the context's last ``window`` queries."""
        q = self.queries[:, -window:]
        k = self.keys.repeat_interleave(self.group, dim=0)
        scores = torch.matmul(q, k.transpose(1, 2)) * self.scaling
        c = self.context
        rows = torch.arange(c - window, c).view(-1, 1)
        scores = scores.masked_fill(torch.arange(c).view(1, -1) > rows, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def attention(self) -> torch.Tensor:
        """The context's whole causal attention ``(q_heads, C, C)`` (made once per layer)."""
        if "attention" not in self.memo:
            self.memo["attention"] = self.window_attention(self.context)
        return self.memo["attention"]

    def prerope_queries(self) -> torch.Tensor:
        """The queries before the rotary embedding ``(q_heads, C, d)`` (its inverse rotation, exact to rounding)."""
        cos, sin = self.rotary(torch.arange(self.context))
        return self.queries * cos - rotate_half(self.queries) * sin


@dataclass(frozen=True)
class Press(Parametrised):
    """Base class: subclasses are frozen dataclasses (fields = parameters), set ``name`` and ``summary``
    and implement :meth:`score` (or :meth:`keep`, for presses that size layers or heads unevenly).

    Class attributes:
        name: registry name (``--press NAME``); kvpress_class: the kvpress class it reproduces.
        summary: one line for the app and ``--help``; methods: a paragraph for the Methods page.
        head_wise: keeps a different number of positions per KV head (its map is per layer and head).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    methods: ClassVar[str] = ""
    kvpress_class: ClassVar[str] = ""
    head_wise: ClassVar[bool] = False

    def min_context(self) -> int:
        """The shortest context this press can score (one line of :meth:`validate` below it)."""
        return 1

    def validate(self, context: int) -> None:
        """Raise :class:`BudgetError` (one line) for parameters out of range or a context too short."""
        check_values(f"press '{self.name}'", self)
        need = self.min_context()
        if context < need:
            raise BudgetError(f"press '{self.name}' needs a context of at least {need} tokens, got C={context}"
                              f"{self.short_context_reason()}")

    def short_context_reason(self) -> str:
        """Why a context is too short, appended to :meth:`validate`'s line (e.g. its window)."""
        return ""

    def score(self, view: PressView) -> torch.Tensor:
        """Importance of each context position ``(kv_heads, C)``; the lowest are pruned."""
        raise NotImplementedError

    def keep(self, view: PressView, ratio: float) -> torch.Tensor:
        """bool ``(kv_heads, C)``: the positions kept at compression ratio ``ratio`` (the share removed)."""
        c = view.context
        if ratio == 0:
            return torch.ones(view.keys.shape[0], c, dtype=torch.bool)
        return top_positions(self.score(view), kept_count(c, ratio))


def top_positions(scores: torch.Tensor, n_kept: int) -> torch.Tensor:
    """bool mask of the ``n_kept`` highest ``scores`` per row ``(rows, C)`` (``torch.topk``, as kvpress)."""
    idx = scores.topk(min(n_kept, scores.shape[-1]), dim=-1).indices
    return torch.zeros(scores.shape, dtype=torch.bool).scatter_(-1, idx, True)


def pad_max(scores: torch.Tensor, left: int = 0, right: int = 0) -> torch.Tensor:
    """``scores`` padded with positions that are always kept (kvpress pads with ``max + 1``)."""
    return torch.nn.functional.pad(scores, (left, right), value=float(scores.max()) + 1)


