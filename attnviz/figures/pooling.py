"""Shrink a big matrix for display by block-averaging (mean pooling).

A 2 000-token attention matrix has 4 million cells: more than a screen has pixels and
far more than a browser wants to receive. :func:`pool_matrix` cuts both axes by the
same whole factor so that neither exceeds ``max_side``; each shown cell then stands
for ``factor × factor`` token pairs.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

POOL_MODES = ("mean", "share")


def pool_factor(shape: tuple[int, ...], max_side: int) -> int:
    """Smallest whole factor that brings every axis of ``shape`` down to at most ``max_side``."""
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    return max(1, math.ceil(max(shape) / max_side))


def pool_matrix(m, max_side: int = 256, mode: str = "mean") -> tuple[np.ndarray, int]:
    """Block-pool a 2-D matrix so that neither side exceeds ``max_side``; return ``(pooled, factor)``.

    ``factor`` is the same for rows and columns (1 = unchanged, the input comes back as a
    float array). A last block that is cut short (``n`` not a multiple of ``factor``) is
    pooled over the cells it really has. NaN cells are ignored; a block of only NaN stays NaN.

    ``mode``:
      * ``"mean"`` — every cell is the mean of its ``factor × factor`` block (the usual
        block average; right for differences, keep-masks, any per-pair quantity).
      * ``"share"`` — rows (queries) are averaged but columns (keys) are *added*: for an
        attention matrix each cell is then the share of attention that the block's queries
        give, on average, to the block's keys, so every pooled row still sums to 1.
        (Plain block means would make rows sum to ``1 / factor``.)
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
    a = np.asarray(m, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"pool_matrix needs a 2-D array, got shape {a.shape}")
    f = pool_factor(a.shape, max_side)
    if f == 1:
        return a.copy(), 1
    r, c = a.shape
    pr, pc = math.ceil(r / f), math.ceil(c / f)
    padded = np.full((pr * f, pc * f), np.nan)
    padded[:r, :c] = a
    tiles = padded.reshape(pr, f, pc, f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks: NaN is the right answer
        if mode == "mean":
            pooled = np.nanmean(tiles, axis=(1, 3))
        else:
            row_sums = np.nansum(tiles, axis=3)  # (pr, f, pc): each query's total weight on the key block
            real_row = np.isfinite(tiles).any(axis=3)
            row_sums[~real_row] = np.nan
            pooled = np.nanmean(row_sums, axis=1)
    return pooled, f
