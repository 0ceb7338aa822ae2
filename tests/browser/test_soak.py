"""Memory soak (issue #18): one server, a round of every page, then 150+ interactions; its memory must stay bounded.

The server's resident memory (``VmRSS``) after the interactions may exceed the value after the first round by at
most ``GROWTH_BOUND``, and its peak (``VmHWM``) must stay under ``PEAK_BOUND``, with both models, the caches of
``ui/cached.py``, press rows and marginal's calibration in memory.  Most interactions use short texts (the point
is many runs, not long ones); one round reads a text at the 1,024-token cap.  Its own server: the numbers are
this test's alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from attnviz.bench import bench_text

from .harness import (
    FIRST_LOAD_S,
    PAGE_S,
    PAGES,
    Server,
    assert_no_failure,
    running,
    sidebar_text,
    wait_for_page,
    wait_until_idle,
)

GROWTH_BOUND = 250 * 2**20  # bytes of resident memory the 150 interactions may add to the first round's
PEAK_BOUND = 2.5 * 2**30  # bytes: the server's high-water mark, both models loaded
INTERACTIONS = 150  # at least: the round under way when they are reached is finished
# Presses that fit a short text's context (snapkv, pyramidkv and adakv need more than their 64-query window).
SHORT_PRESSES = ["knorm", "tova", "streaming_llm", "expected_attention", "observed_attention", "random"]
STEP_S = 120  # a control not found or not answering within this fails the test (with a screenshot)
SHORT_TEXTS = [
    "The cat sat on the mat because it was tired.",
    "Rivers carry water from the hills to the sea, and towns grow where they meet.",
    "She opened the old box and found letters her grandmother had never sent.",
]


def memory(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of process ``pid`` in bytes: resident now and the peak so far (Linux /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024  # "1234 kB"
    return fields["VmRSS"], fields["VmHWM"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server of this module's own (the shared one would carry other tests' caches into the numbers)."""
    with running(Server(tmp_path_factory.mktemp("soak") / "streamlit.log", env={"ATTNVIZ_LOG_PASSES": None})) as srv:
        yield srv


class Soak:
    """Drives one tab and counts what it did; every step waits for the run it started to end."""

    def __init__(self, page, server: Server) -> None:
        self.page, self.server, self.done, self.t0 = page, server, 0, time.monotonic()

    def log(self, what: str) -> None:
        """One line per step (pytest -s shows them): where a slow or stuck soak is."""
        rss, _ = memory(self.server.proc.pid)
        print(f"soak {time.monotonic() - self.t0:6.1f} s #{self.done:3d} {what}: RSS {rss / 2**20:.0f} MB", flush=True)

    def settle(self, quiet_s: float = 0.5) -> None:
        """Wait until the run a control started has ended: Streamlit's status widget shows from the moment a rerun
        is requested (a slider sends its value after a short debounce) until the run ends, then fades in 0.2 s."""
        self.page.wait_for_timeout(300)
        status = self.page.locator('[data-testid="stStatusWidget"]')
        deadline, quiet_since = time.monotonic() + PAGE_S, None
        while time.monotonic() < deadline:
            if status.count():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > quiet_s:
                return
            self.page.wait_for_timeout(100)
        raise TimeoutError(f"still running after {PAGE_S} s")

    def goto(self, path: str) -> None:
        """A page change through the sidebar, as a visitor makes it."""
        self.page.locator(f'[data-testid="stSidebarNav"] a[href$="/{path}"]').first.click()
        wait_for_page(self.page, self.server, path, timeout_s=240)
        self.done += 1
        self.log(f"page /{path}")

    def keys(self, slider: str, *presses: str) -> None:
        """One interaction per key press on the slider labelled ``slider``."""
        handle = self.page.get_by_role("slider", name=slider)
        for key in presses:
            handle.focus()
            handle.press(key)
            self.settle()
            self.done += 1
            self.log(f"{slider}: {key}")

    def choose(self, label: str, option: str) -> None:
        """Pick ``option`` in the select box labelled ``label`` (in the page or the sidebar)."""
        self.page.locator('[data-testid="stSelectbox"]', has_text=label).first.click()
        self.page.get_by_role("option", name=option, exact=True).click()
        self.settle()
        self.done += 1
        self.log(f"{label}: {option}")

    def click(self, button: str) -> None:
        self.page.get_by_role("button", name=button).first.click()
        self.settle()
        self.done += 1
        self.log(button)

    def text(self, text: str) -> None:
        """A new text in the sidebar (a text area sends its value when it loses focus)."""
        box = sidebar_text(self.page)
        box.fill(text)
        box.blur()
        self.settle()
        self.done += 1
        self.log(f"text of {len(text)} characters")

    def check(self, where: str) -> None:
        assert_no_failure(self.page, self.server, where)


def short_round(s: Soak, i: int) -> None:
    """One round over the pages with a short text: 20 interactions (21 in the first)."""
    s.goto("")
    s.keys("Links each word may keep (K)", "ArrowLeft" if i % 2 else "ArrowRight", "End", "Home")
    s.goto("budget")
    s.keys("Keys kept per query, K", "ArrowRight" if i % 2 else "ArrowLeft", "End")
    s.goto("spend")
    s.keys("Total budget, as uniform K", "ArrowRight" if i % 2 else "ArrowLeft", "End")
    s.goto("compress")
    if i == 0:
        s.keys("New tokens", "Home")  # the pressed and full continuations: one token from now on
    s.keys("Compression ratio r (share removed)", "ArrowRight", "ArrowLeft")
    s.choose("Press", SHORT_PRESSES[i % len(SHORT_PRESSES)])
    s.goto("generate")
    # Few new tokens (1 or 2) after the first round: each text is continued afresh, and decoding is slow.
    s.keys("New tokens", "Home" if i == 0 else "ArrowRight" if i % 2 else "ArrowLeft")
    s.goto("frontier")
    s.goto("explore")
    s.check(f"round {i}")


def test_memory_stays_bounded_over_150_interactions(browser, server):
    proc = Path(f"/proc/{server.proc.pid}")
    # The pid must be the Python running streamlit itself, not a wrapper around it.
    assert "python" in os.readlink(proc / "exe") and b"streamlit" in (proc / "cmdline").read_bytes()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(STEP_S * 1000)
    s = Soak(page, server)
    t0 = time.monotonic()
    try:
        page.goto(server.url + "/")
        wait_for_page(page, server, "", FIRST_LOAD_S)
        for path in PAGES:  # the first round: every page once, the default text
            if path:
                s.goto(path)
        s.check("first round")
        page.goto(server.url + "/?model=minilm")  # the second model, so both are loaded before the baseline
        wait_for_page(page, server, "")
        page.goto(server.url + "/")
        wait_for_page(page, server, "")
        first, _ = memory(server.proc.pid)
        t_first = time.monotonic() - t0
        s.done = 0

        s.keys("Token cap", "End")  # 1,024 tokens from now on
        for i in range(3):
            s.text(f"{SHORT_TEXTS[i % len(SHORT_TEXTS)]} Round {i}.")  # a new text each round: new passes
            short_round(s, i)
        # Once: the allocator that calibrates, the Spend page's frontier, the Compress page's frontier.
        s.goto("spend")
        s.choose("Allocator", "marginal")
        s.click("Compute the frontier")
        s.goto("compress")
        s.click("Compute the frontier")
        s.check("frontiers")
        # Once: a text at the cap (the lighthouse essay, 1,302 tokens, cut to 1,024).
        s.text(bench_text())
        s.goto("")
        s.keys("Links each word may keep (K)", "ArrowRight")
        s.goto("budget")
        s.goto("generate")
        s.goto("compress")
        s.choose("Press", "snapkv")
        s.choose("Press", SHORT_PRESSES[0])  # the short texts next need a press that fits them
        s.check("a text at the cap")
        i = 3
        while s.done < INTERACTIONS:
            s.text(f"{SHORT_TEXTS[i % len(SHORT_TEXTS)]} Round {i}.")  # a new text each round: new passes
            short_round(s, i)
            i += 1
        page.wait_for_timeout(1000)
        wait_until_idle(page)
        after, peak = memory(server.proc.pid)
    except Exception:
        page.screenshot(path=str(server.log.with_name("soak-failed.png")))
        print(f"soak failed after {s.done} interactions: {server.log.with_name('soak-failed.png')}\n{server.tail()}")
        raise
    finally:
        context.close()
    mb = 2**20
    print(f"soak: {s.done} interactions in {time.monotonic() - t0 - t_first:.0f} s (first round {t_first:.0f} s); "
          f"RSS {first / mb:.0f} MB after the first round, {after / mb:.0f} MB after ({(after - first) / mb:+.0f}), "
          f"peak {peak / mb:.0f} MB")
    assert after - first <= GROWTH_BOUND, f"resident memory grew by {(after - first) / mb:.0f} MB"
    assert peak <= PEAK_BOUND, f"peak resident memory {peak / mb:.0f} MB"
