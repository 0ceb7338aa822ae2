"""Tests for :mod:`attnviz.engine.queue`: at most ``slots`` turns at once, served in the order requests began,
and a waiting thread told how many requests are ahead of it."""

from __future__ import annotations

import threading
import time

import pytest

from attnviz.engine.queue import PassQueue


def _hold(queue: PassQueue, release: threading.Event, started: threading.Event, since: float | None = None):
    def run() -> None:
        with queue.turn(since=since):
            started.set()
            release.wait(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    return thread


def _until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_waiting_request_is_told_how_many_are_ahead_and_when_its_turn_comes():
    queue, release = PassQueue(2), threading.Event()
    holders = [_hold(queue, release, threading.Event()) for _ in range(2)]
    told, inside = [], []

    def waiter() -> None:
        with queue.turn(on_wait=told.append):
            inside.append(queue.busy())

    thread = threading.Thread(target=waiter)
    thread.start()
    _until(lambda: told == [2])
    assert queue.busy() == 3 and queue.ahead(thread.ident) == 2 and not inside
    release.set()
    thread.join(10)
    for h in holders:
        h.join(10)
    assert told == [2, 0] and inside  # the turn came once a slot was free; 0 said so
    assert queue.busy() == 0 and queue.ahead(thread.ident) is None


def test_turns_go_in_the_order_requests_began_and_the_count_follows():
    """A request that began earlier (a page's second pass) goes before those that began after it."""
    queue, release = PassQueue(1), threading.Event()
    holder = _hold(queue, release, threading.Event())
    order, told = [], {}

    def request(name: str, since: float) -> threading.Thread:
        told[name] = []

        def run() -> None:
            with queue.turn(on_wait=told[name].append, since=since):
                order.append(name)

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    now = time.monotonic()
    late = request("late", now)
    _until(lambda: told["late"] == [1])
    early = request("early", now - 5)
    _until(lambda: told["early"] == [1] and told["late"] == [1, 2])  # the early one went ahead of it
    release.set()
    for t in (holder, early, late):
        t.join(10)
    assert order == ["early", "late"]
    # then 1 (only the early one ahead), unless the early one was done before the late one looked again
    assert told["late"] in ([1, 2, 1, 0], [1, 2, 0])


def test_nested_turns_of_one_thread_pass_through():
    queue = PassQueue(1)
    with queue.turn(), queue.turn():
        assert queue.ahead() == 0 and queue.busy() == 1
    assert queue.busy() == 0


def test_a_request_stopped_while_waiting_gives_up_its_place():
    queue, release = PassQueue(1), threading.Event()
    holder = _hold(queue, release, threading.Event())

    class Stopped(Exception):
        pass

    def stop(n: int) -> None:
        raise Stopped

    with pytest.raises(Stopped):
        with queue.turn(on_wait=stop):
            pass
    assert queue.busy() == 1  # only the holder
    release.set()
    holder.join(10)
    with queue.turn():
        assert queue.busy() == 1


def test_a_queue_needs_a_slot():
    with pytest.raises(ValueError):
        PassQueue(0)
