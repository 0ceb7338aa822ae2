"""Worker threads that run independent model passes side by side, each on its share of the cores.

Why: on a machine with few cores, two packed passes each on one core finish a
sweep sooner than the same passes one after another on both cores.  One pass's
matrix products overlap the other's Python and small-tensor work, and a pass on
one core never waits at a thread barrier for a core that something else (a
browser, another session) has taken.  Measured in ``benchmarks/app_bench.py``.

How: torch keeps its intra-op thread count per thread (OpenMP's and MKL's
settings are per thread), but :func:`torch.set_num_threads` also stores a
process-wide default that every *new* thread adopts on its first parallel
operation.  So each worker first adopts the default, then lowers its own count,
and the thread that made the pool puts the default back before anything else
runs; threads started later (Streamlit starts one per script run) keep every
core.  The pool is shared by the whole process and holds no per-request state:
requests from several sessions queue in it, which is what a server with a few
cores wants.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["side_by_side", "WORKERS"]

WORKERS = 2
"""Passes that run at once; each gets ``torch.get_num_threads() // WORKERS`` cores."""

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def side_by_side() -> ThreadPoolExecutor | None:
    """The shared pool of :data:`WORKERS` threads, or None on a machine with fewer cores than that.

    The cores are those torch uses in the calling thread (``torch.get_num_threads()``).
    """
    total = torch.get_num_threads()
    if total < WORKERS:
        return None
    with _lock:
        if total not in _pools:
            _pools[total] = _start(total)
        return _pools[total]


def _start(total: int) -> ThreadPoolExecutor:
    share = total // WORKERS
    ready = threading.Barrier(WORKERS + 1)

    def lower_own_count() -> None:
        torch.get_num_threads()  # adopt the process default now (torch does it lazily on first use) ...
        torch.set_num_threads(share)  # ... then lower this thread's count (this also sets the default)

    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="attnviz-pass", initializer=lower_own_count)
    try:
        for _ in range(WORKERS):  # each blocked task makes the pool start one more thread
            pool.submit(ready.wait)
        ready.wait(timeout=60)
    finally:
        torch.set_num_threads(total)  # the default back for every thread started from now on
    return pool
