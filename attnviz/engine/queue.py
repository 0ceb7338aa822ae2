"""One bounded queue for a server's heavy model passes: at most ``slots`` run at once, the rest wait their turn.

Why: on a machine with two cores, eight visitors' passes running at once share the cores, so every visitor waits
about as long as the whole burst takes.  Run in turns, the first visitors get their numbers much sooner, at some
cost to the last (``benchmarks/load_queue.py`` measures both).

The queue holds no model state and no per-request settings: only who is running and who waits, first come first
served.  A waiting thread may be told how many requests are ahead of it (``on_wait``), so a page can say so.
A thread must not wait for anything else while it holds a turn (a cache lock, another request's result): a thread
holding that lock may be waiting in this queue.  Nested turns of one thread pass straight through.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["PassQueue"]


class PassQueue:
    """At most ``slots`` threads inside :meth:`turn` at once; the others wait, first come first served.

    "First come" is when the request began (``since`` of :meth:`turn`), not when it asked for this turn: a page
    that needs two passes, one after the other, gets its second before requests that arrived after it (else
    each of a burst's visitors would wait for everyone's first pass before its second).
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a queue needs at least one slot")
        self.slots = slots
        self._cond = threading.Condition()
        self._running: dict[int, int] = {}  # thread id -> nesting depth of its turn
        self._waiting: list[tuple[float, int, int]] = []  # (since, arrival number, thread id), first served first
        self._arrivals = itertools.count()

    def ahead(self, thread: int | None = None) -> int | None:
        """Requests ahead of ``thread`` (default: the calling thread): those running plus those queued before it;
        0 when it runs, None when it neither runs nor waits."""
        thread = threading.get_ident() if thread is None else thread
        with self._cond:
            return self._ahead(thread)

    def _ahead(self, thread: int) -> int | None:
        if thread in self._running:
            return 0
        for i, (_, _, waiting) in enumerate(self._waiting):
            if waiting == thread:
                return len(self._running) + i
        return None

    def busy(self) -> int:
        """Requests running or waiting."""
        with self._cond:
            return len(self._running) + len(self._waiting)

    @contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None, since: float | None = None) -> Iterator[None]:
        """Run the ``with`` body in a turn, served in the order of ``since`` (``time.monotonic()`` when the request
        began; default: now), ties first come first served.  While waiting, ``on_wait(n)`` is called with the
        ``n`` requests ahead (each time it changes, from this thread, outside the queue's lock), and
        ``on_wait(0)`` once the turn comes after a wait.  If ``on_wait`` raises (a page's run was stopped), the
        place in the queue is given up.
        """
        me = threading.get_ident()
        with self._cond:
            if me in self._running:  # nested: this thread already holds a turn
                self._running[me] += 1
                nested = True
            else:
                bisect.insort(self._waiting, (time.monotonic() if since is None else since, next(self._arrivals), me))
                self._cond.notify_all()  # those it went ahead of now have one more request ahead
                nested = False
        waited = False if nested else self._wait_for_turn(me, on_wait)
        try:
            if waited and on_wait is not None:
                on_wait(0)
            yield
        finally:
            with self._cond:
                self._running[me] -= 1
                if not self._running[me]:
                    del self._running[me]
                    self._cond.notify_all()

    def _wait_for_turn(self, me: int, on_wait: Callable[[int], None] | None) -> bool:
        """Block until ``me`` may run (then it counts as running); whether it had to wait."""
        shown = None
        try:
            while True:
                with self._cond:
                    n = self._ahead(me)
                    while n >= self.slots and (n == shown or on_wait is None):
                        self._cond.wait()
                        n = self._ahead(me)
                    if n < self.slots:
                        self._drop(me)
                        self._running[me] = 1
                        return shown is not None
                shown = n
                on_wait(n)
        except BaseException:
            with self._cond:
                if self._drop(me):
                    self._cond.notify_all()
            raise

    def _drop(self, thread: int) -> bool:
        """Take ``thread`` out of the waiting list; whether it was there."""
        for i, entry in enumerate(self._waiting):
            if entry[2] == thread:
                del self._waiting[i]
                return True
        return False
