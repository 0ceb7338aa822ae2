"""What a budgeted pass counts: query-key pairs kept, scored and allowed, attention mass kept, cached keys."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RowStats"]


@dataclass
class RowStats:
    """Counts for one budget (one batch row or packed segment), summed over layers and query heads.

    ``kept_pairs``/``allowed_pairs``/``scored_pairs`` count query-key pairs;
    ``mass_sum``/``mass_rows`` give the mean share of the pre-mask softmax the
    kept keys hold; ``kv_keys`` the cached keys at the last position, summed
    over layers and KV heads.
    """

    kept_pairs: int = 0
    allowed_pairs: int = 0
    scored_pairs: int = 0
    mass_sum: float = 0.0
    mass_rows: int = 0
    kv_keys: int = 0

    def add(self, other: RowStats) -> None:
        """Add another part's counts (one layer's, from :func:`attnviz.engine.apply.apply_budget`)."""
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
