"""Observers: summarise every layer's attention during a pass, without keeping all the weights.

Pass instances to :func:`attnviz.measure.reference_pass` / ``budget_pass`` as
``observers=[...]``; each is called once per layer as ``observer(layer,
weights, keep)`` with ``weights`` ``(batch, q_heads, q, k)`` float32 (after the
budget: rows sum to 1 over the kept keys) and ``keep`` a bool mask of the same
shape or None (see :class:`attnviz.engine.run.BudgetRun`).  Each observer
looks at one batch row (``row``, default 0).

* :class:`HeadStats` -- per layer and query head: entropy, sink share, top-3 mass.
* :class:`LayerSummary` -- per layer: head-mean and head-max maps, per-head thumbnails.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["HeadStats", "LayerSummary", "TOP_N", "thumbnail"]

TOP_N = 3  # "top-3 mass": the share of a row's weight held by its 3 largest keys


class HeadStats:
    """Per (layer, query head) means over query rows of attention-row statistics.

    * ``entropy``: ``-sum_k w log w`` of a row, in nats (``0 log 0 = 0``); at
      most ``log(#keys the row may see)``;
    * ``sink_share``: the weight on key 0 (the first token: "attention sink");
    * ``top3_mass``: the weight held by the row's 3 largest keys (all of them
      when the row sees fewer than 3).

    Rows with no weight at all (no visible key) are left out of the means.
    Repeated calls for one layer (e.g. decoding steps) add their rows to the
    same means.
    """

    def __init__(self, row: int = 0) -> None:
        self.row = row
        self._sums: dict[int, torch.Tensor] = {}  # layer -> (3, heads) float64 sums over rows
        self._rows: dict[int, torch.Tensor] = {}  # layer -> (heads,) float64 row counts

    def __call__(self, layer: int, weights: torch.Tensor, keep: torch.Tensor | None) -> None:
        w = weights[self.row].detach().float()  # (heads, q, k)
        live = w.sum(-1) > 0  # (heads, q)
        entropy = torch.special.entr(w).sum(-1)
        sink = w[..., 0]
        top = w.topk(min(TOP_N, w.shape[-1]), dim=-1).values.sum(-1)
        sums = torch.stack([(s * live).sum(-1) for s in (entropy, sink, top)]).double()
        rows = live.sum(-1).double()
        if layer in self._sums:
            sums, rows = sums + self._sums[layer], rows + self._rows[layer]
        self._sums[layer], self._rows[layer] = sums, rows

    @property
    def layers(self) -> list[int]:
        """The layers seen so far, in order (the row order of the arrays)."""
        return sorted(self._sums)

    def _means(self, index: int) -> np.ndarray:
        if not self._sums:
            return np.zeros((0, 0))
        sums = torch.stack([self._sums[layer][index] for layer in self.layers])
        rows = torch.stack([self._rows[layer] for layer in self.layers])
        return (sums / rows.clamp_min(1)).where(rows > 0, torch.nan).numpy()

    @property
    def entropy(self) -> np.ndarray:
        """Mean row entropy ``(layers, heads)`` in nats (NaN where no row was seen)."""
        return self._means(0)

    @property
    def sink_share(self) -> np.ndarray:
        """Mean weight on key 0, ``(layers, heads)``, in [0, 1]."""
        return self._means(1)

    @property
    def top3_mass(self) -> np.ndarray:
        """Mean weight of the 3 largest keys per row, ``(layers, heads)``, in [0, 1]."""
        return self._means(2)

    def arrays(self) -> dict[str, np.ndarray]:
        """``{"entropy", "sink_share", "top3_mass"}`` -> ``(layers, heads)`` float64 arrays (rows: :attr:`layers`)."""
        return {"entropy": self.entropy, "sink_share": self.sink_share, "top3_mass": self.top3_mass}

    def table(self) -> list[dict[str, float | int]]:
        """One dict per (layer, head): ``layer``, ``head``, ``entropy``, ``sink_share``, ``top3_mass``."""
        stats = self.arrays()
        return [
            {"layer": layer, "head": head, **{name: float(a[i, head]) for name, a in stats.items()}}
            for i, layer in enumerate(self.layers)
            for head in range(stats["entropy"].shape[1])
        ]


class LayerSummary:
    """Per layer: the head-mean and head-max ``(q, k)`` maps and per-head thumbnails.

    Attributes (dicts keyed by layer, CPU tensors):
        head_mean: ``(q, k)`` float16, the mean over query heads (rows sum to 1).
        head_max: ``(q, k)`` float16, the max over query heads.
        thumbs: ``(q_heads, tq, tk)`` float16 block averages of each head's map,
            ``tq = min(q, thumb_size)``, ``tk = min(k, thumb_size)``.

    Memory: ``2 · 2 · q · k`` bytes per layer for the maps (30 layers at 1024
    tokens: 126 MB), ``2 · q_heads · thumb_size²`` for the thumbnails.  A
    second call for a layer replaces the first.
    """

    def __init__(self, thumb_size: int = 32, row: int = 0, dtype: torch.dtype = torch.float16) -> None:
        if thumb_size < 1:
            raise ValueError(f"thumb_size must be at least 1, got {thumb_size}")
        self.thumb_size = thumb_size
        self.row = row
        self.dtype = dtype
        self.head_mean: dict[int, torch.Tensor] = {}
        self.head_max: dict[int, torch.Tensor] = {}
        self.thumbs: dict[int, torch.Tensor] = {}

    def __call__(self, layer: int, weights: torch.Tensor, keep: torch.Tensor | None) -> None:
        w = weights[self.row].detach().float()  # (heads, q, k)
        self.head_mean[layer] = w.mean(0).to(self.dtype)
        self.head_max[layer] = w.amax(0).to(self.dtype)
        self.thumbs[layer] = thumbnail(w, self.thumb_size).to(torch.float16)

    @property
    def layers(self) -> list[int]:
        return sorted(self.head_mean)

    def nbytes(self) -> int:
        """Bytes held by all stored tensors."""
        return sum(t.numel() * t.element_size() for d in (self.head_mean, self.head_max, self.thumbs)
                   for t in d.values())


def thumbnail(weights: torch.Tensor, size: int) -> torch.Tensor:
    """Block-average ``(..., q, k)`` maps down to ``(..., min(q, size), min(k, size))`` (float32)."""
    q, k = weights.shape[-2:]
    out = (min(q, size), min(k, size))
    if out == (q, k):
        return weights.float().clone()
    lead = weights.shape[:-2]
    pooled = torch.nn.functional.adaptive_avg_pool2d(weights.float().reshape(-1, 1, q, k), out)
    return pooled.reshape(*lead, *out)
