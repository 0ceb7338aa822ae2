"""Give freed memory back to the operating system after each script run.

A forward pass allocates many tensors of a few to a few tens of MB.  glibc serves those from per-thread heaps
(Streamlit runs every script run in a new thread) and keeps what is freed, so a server's resident memory
creeps up run after run although nothing is kept.  ``malloc_trim(0)`` returns the free parts of every heap;
it takes milliseconds.  Elsewhere than Linux/glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_free_memory() -> None:
    """Return free heap memory to the OS (glibc ``malloc_trim``); a no-op where unavailable."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
