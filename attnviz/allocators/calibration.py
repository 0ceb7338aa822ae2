"""What the calibrating allocators (``marginal``, ``duo``) share: the shipped texts they calibrate on,
and a disk cache of their measurements per model, text and length.

A calibration text is another text than the one evaluated (one text would flatter its own allocation).
``auto`` means ``rivers`` (shipped for this), or ``lighthouses`` when ``rivers`` is the text evaluated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = ["SHIPPED_TEXTS", "CALIBRATION_CHOICES", "shipped_text", "calibration_name", "cached_arrays"]

DATA = Path(__file__).resolve().parent.parent / "data"
SHIPPED_TEXTS = tuple(sorted(p.stem for p in DATA.glob("*.txt")))
"""Names of the texts shipped in ``attnviz/data`` (``lighthouses``, ``rivers``)."""

CALIBRATION_CHOICES = ("auto", *SHIPPED_TEXTS)
_FORMAT = 2  # bump when what is measured changes: old cache files are then ignored
CALIBRATION_FILES = 64
"""Calibration files kept on disk at most, the least recently used removed first.  Every model, shipped text,
length (1 to 1,024 tokens) and parameter gets a file, so without a bound they would pile up on a public server:
``marginal``'s hold a few kB, ``duo``'s ``(layers, q_heads, n)`` float64 distances up to 2.2 MB (SmolLM2 at
1,024 tokens), so at most about 140 MB."""


def shipped_text(name: str) -> str:
    """The shipped text ``name`` (a stem of ``attnviz/data/*.txt``)."""
    return (DATA / f"{name}.txt").read_text(encoding="utf-8")


def calibration_name(choice: str, evaluated_ids, lm, n_tokens: int) -> str:
    """The shipped text a calibration runs on: ``choice``, or for ``auto`` the first of ``rivers``,
    ``lighthouses`` whose first ``n_tokens`` tokens are not the evaluated ids ``(1, n)``."""
    if choice != "auto":
        return choice
    from ..measure.reference import encode_for

    for name in ("rivers", "lighthouses"):
        ids = encode_for(lm, shipped_text(name), n_tokens).ids
        if evaluated_ids is None or ids.shape != evaluated_ids.shape or not bool((ids == evaluated_ids).all()):
            return name
    return "rivers"


def _cache_dir() -> Path:
    from ..models.gguf_cache import cache_root

    return cache_root() / "calibration"


def cached_arrays(kind: str, lm, text_name: str, n_tokens: int, compute: Callable[[], dict[str, np.ndarray]]
                  ) -> dict[str, np.ndarray]:
    """``compute()``'s arrays, cached on disk per ``kind``, model weights, text and length.

    A damaged or unwritable cache is ignored (computed again); writes are atomic (a temporary file renamed).  At
    most :data:`CALIBRATION_FILES` files are kept: a file read is marked as used, the least recently used go.
    """
    key = json.dumps([_FORMAT, kind, lm.name, lm.weights, text_name, hashlib.sha256(
        shipped_text(text_name).encode()).hexdigest(), n_tokens])
    path = _cache_dir() / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"
    try:
        with np.load(path) as got:
            arrays = {k: got[k] for k in got.files}
        with contextlib.suppress(OSError):
            os.utime(path)  # its modification time says when it was last used
        return arrays
    except (OSError, ValueError, KeyError, EOFError):
        pass
    arrays = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only disk: the next call measures again
    _prune(path.parent, CALIBRATION_FILES)
    return arrays


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently used ``.npz`` files of ``folder`` (another server may be pruning
    the same folder: a file already gone is fine)."""
    try:
        files = [(p.stat().st_mtime, p) for p in folder.glob("*.npz")]
    except OSError:
        return
    files.sort(reverse=True)
    for _, p in files[keep:]:
        with contextlib.suppress(OSError):
            p.unlink()
