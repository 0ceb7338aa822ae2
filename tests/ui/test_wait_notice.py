"""A page whose model passes wait (the server's queue of passes, or another session computing the same cached call)
says "Waiting for N other requests…", N from the queue's real state."""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from attnviz.engine.queue import PassQueue
from ui import cached
from ui.show import waiting_text


@pytest.fixture
def queue(monkeypatch):
    """The server's pass queue switched on, 2 slots (ATTNVIZ_PASS_SLOTS=2)."""
    monkeypatch.setattr(cached, "PASS_SLOTS", 2)
    monkeypatch.setattr(cached, "PASSES", PassQueue(2))


def _until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _holders(count: int, release: threading.Event) -> list[threading.Thread]:
    """``count`` threads each holding a turn of the server's pass queue until ``release``."""
    started = threading.Barrier(count + 1)

    def hold() -> None:
        with cached.PASSES.turn():
            started.wait(10)
            release.wait(10)

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    started.wait(10)
    return threads


def test_a_pass_waiting_in_the_queue_says_how_many_requests_are_ahead(queue):
    release, told = threading.Event(), []
    holders = _holders(cached.PASS_SLOTS, release)

    def page_run() -> None:
        cached.set_wait_notice(told.append)
        with cached._turn():
            told.append("ran")

    thread = threading.Thread(target=page_run)
    thread.start()
    _until(lambda: told == [cached.PASS_SLOTS])
    release.set()
    thread.join(10)
    for h in holders:
        h.join(10)
    assert told == [cached.PASS_SLOTS, 0, "ran"]


def test_waiting_for_another_sessions_identical_computation_counts_it_and_its_place(queue):
    """The owner of a computation waits behind the queue's full slots: the second asker has those plus it ahead."""
    release, computing, told = threading.Event(), threading.Event(), []
    holders = _holders(cached.PASS_SLOTS, release)
    key, result = ("test", "same call"), []

    def owner() -> None:
        def compute():
            computing.set()
            with cached._turn():  # waits behind the holders
                return 42

        result.append(cached._waiting_for_same(key, compute))

    first = threading.Thread(target=owner)
    first.start()
    computing.wait(10)
    _until(lambda: cached.PASSES.ahead(first.ident) == cached.PASS_SLOTS)

    def second() -> None:
        cached.set_wait_notice(told.append)
        # Streamlit's lock for the key would make this call wait for the owner's result: here it just runs.
        result.append(cached._waiting_for_same(key, lambda: 42))

    asker = threading.Thread(target=second)
    asker.start()
    asker.join(10)
    assert told == [cached.PASS_SLOTS + 1, 0]
    release.set()
    first.join(10)
    for h in holders:
        h.join(10)
    assert result == [42, 42] and not cached._in_flight


def test_without_a_queue_an_identical_computation_counts_as_one_request(monkeypatch):
    monkeypatch.setattr(cached, "PASSES", None)
    told, release, computing = [], threading.Event(), threading.Event()
    key = ("test", "no queue")

    def owner() -> None:
        def compute():
            computing.set()
            release.wait(10)

        cached._waiting_for_same(key, compute)

    first = threading.Thread(target=owner)
    first.start()
    computing.wait(10)
    cached.set_wait_notice(told.append)
    try:
        cached._waiting_for_same(key, lambda: None)
    finally:
        cached.set_wait_notice(None)
    release.set()
    first.join(10)
    assert told == [1, 0]
    with cached._turn():  # no queue: a turn never waits
        pass


def _notice_page() -> None:
    import streamlit as st

    from ui import cached
    from ui.show import wait_notice

    wait_notice()
    st.title("after the notice")

    @st.cache_resource
    def compute(x: int) -> int:
        on_wait, _ = cached._notice()
        on_wait(3)  # as the queue calls it from inside a cached function
        return x

    st.write(compute(1))


def test_the_notice_shows_from_inside_a_cached_function_and_a_cache_hit_replays_nothing():
    at = AppTest.from_function(_notice_page, default_timeout=30).run()
    assert not at.exception
    assert [i.value for i in at.info] == [waiting_text(3)] == ["Waiting for 3 other requests…"]
    at.run()  # a cache hit: nothing of the notice is replayed (an element written outside would fail to replay)
    assert not at.exception and not at.info
    assert waiting_text(1) == "Waiting for 1 other request…"
