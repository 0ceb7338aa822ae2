"""What a budgeted pass counts: query-key pairs kept, scored and allowed, attention mass kept, cached keys."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["RowStats"]


@dataclass
class RowStats:
    """Counts for one budget (one batch row or packed segment), summed over layers and query heads.

    ``kept_pairs``/``allowed_pairs``/``scored_pairs`` count query-key pairs;
    ``mass_sum``/``mass_rows`` give the mean share of the pre-mask softmax the
    kept keys hold; ``kv_keys`` the cached keys at the last position, summed
    over layers and KV heads.

    ``layer_kept`` maps a layer to its kept pairs per query head ``(q_heads,)`` and ``layer_allowed``
    to its allowed pairs per head (the allocation map); ``head_kept``/``head_allowed`` are one layer's,
    as :func:`attnviz.engine.apply.apply_budget` returns them.
    """

    kept_pairs: int = 0
    allowed_pairs: int = 0
    scored_pairs: int = 0
    mass_sum: float = 0.0
    mass_rows: int = 0
    kv_keys: int = 0
    layer_kept: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)
    layer_allowed: dict[int, int] = field(default_factory=dict, compare=False, repr=False)
    head_kept: torch.Tensor | None = field(default=None, compare=False, repr=False)
    head_allowed: int = field(default=0, compare=False, repr=False)

    def add(self, other: RowStats, layer: int | None = None) -> None:
        """Add another part's counts (one layer's, from :func:`attnviz.engine.apply.apply_budget`, given
        with its ``layer`` for the allocation map)."""
        if layer is not None and other.head_kept is not None:
            self.layer_kept[layer] = self.layer_kept.get(layer, 0) + other.head_kept
            self.layer_allowed[layer] = self.layer_allowed.get(layer, 0) + other.head_allowed
        self.kept_pairs += other.kept_pairs
        self.allowed_pairs += other.allowed_pairs
        self.scored_pairs += other.scored_pairs
        self.mass_sum += other.mass_sum
        self.mass_rows += other.mass_rows
        self.kv_keys += other.kv_keys

    def add_full_rows(self, pairs: int, rows: int) -> None:
        """Count rows known to keep every allowed key without running them (a shared prefix)."""
        self.add(RowStats(kept_pairs=pairs, allowed_pairs=pairs, scored_pairs=pairs, mass_sum=rows, mass_rows=rows))

    @property
    def mass_kept(self) -> float:
        """Mean share of each row's full softmax held by the kept keys (1.0 when nothing was counted)."""
        return self.mass_sum / self.mass_rows if self.mass_rows else 1.0

    @property
    def density(self) -> float:
        """Kept / allowed query-key pairs (1.0 when nothing was counted)."""
        return self.kept_pairs / self.allowed_pairs if self.allowed_pairs else 1.0

    def allocation(self, layers: int, q_heads: int, full_pairs: int = 0) -> torch.Tensor | None:
        """Share of allowed pairs kept per layer and query head, float64 ``(layers, q_heads)``; None unless
        every layer was counted.  ``full_pairs`` per head and layer kept every key without being run."""
        if len(self.layer_kept) != layers:
            return None
        kept = torch.stack([self.layer_kept[layer].double() for layer in range(layers)]) + full_pairs
        allowed = torch.tensor([float(self.layer_allowed[layer]) for layer in range(layers)]) + full_pairs
        return kept / allowed.clamp_min(1).view(-1, 1)
