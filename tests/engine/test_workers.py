"""Tests for :mod:`attnviz.engine.workers`: the shared pool lowers only its own threads' core count."""

from __future__ import annotations

import threading

import torch

from attnviz.engine import workers


def _in_new_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("value", fn()))
    t.start()
    t.join()
    return out["value"]


def test_workers_run_on_their_share_and_later_threads_keep_every_core(two_cores):
    pool = workers.side_by_side()
    assert pool is not None
    barrier = threading.Barrier(workers.WORKERS)

    def count() -> tuple[str, int]:
        barrier.wait(timeout=30)  # every worker answers once: both threads, not one twice
        return threading.current_thread().name, torch.get_num_threads()

    answers = [f.result(timeout=60) for f in [pool.submit(count) for _ in range(workers.WORKERS)]]
    assert len({name for name, _ in answers}) == workers.WORKERS
    assert [n for _, n in answers] == [2 // workers.WORKERS] * workers.WORKERS
    # The process default is back: this thread, and threads started after the pool, use both cores.
    assert torch.get_num_threads() == 2
    assert _in_new_thread(torch.get_num_threads) == 2
    assert workers.side_by_side() is pool  # one pool per process (per core count)


def test_a_single_core_gets_no_pool():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert workers.side_by_side() is None
    finally:
        torch.set_num_threads(before)
