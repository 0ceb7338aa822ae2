"""Eight visitors at once (issue #18, load): each gets exactly the numbers it gets alone, the server stays up,
the last of them waits at most eight times a lone visit, and the server's peak memory stays bounded.

One Chromium, one browser context per visitor, driven concurrently through Playwright's async API (its sync API
is bound to one thread and one event loop, which the burst needs eight of).  Each scenario first runs alone, then
all eight run at once on the same server.  The lone runs use a token cap of 240 and the burst the default 256 (a
second burst, if the first missed the time bound, 248):
every text here is shorter than either, so the model reads the same tokens and must give the same numbers, while
the burst finds none of the lone runs' results in the server's caches (they are keyed by the cap) and computes
everything afresh, concurrently.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import CHROMIUM, CHROMIUM_ARGS, FIRST_LOAD_S, MISSING, PAGE_S, PAGES

try:
    from playwright.async_api import async_playwright
except ImportError:  # MISSING says so
    async_playwright = None

LONE_CAP = 240  # every scenario's text is shorter: see the module docstring
# Token caps of the bursts (None: the default 256), so each finds nothing cached.  The time bound must hold in one of
# two bursts: on this shared 2-core machine, with the eight browsers on the same cores, a burst takes about as long as
# eight lone visits one after the other (6.9-8.7x in runs on 2026-12-06), and one slow spell must not fail CI.  The
# numbers and the memory bound must hold in every burst.
BURST_CAPS = (None, 248)
PEAK_BYTES = 2.5 * 2**30
VISITORS = 8


@dataclass(frozen=True)
class Scenario:
    path: str  # key of harness.PAGES
    params: dict[str, str]
    ready: tuple[str, ...] = ()  # selectors shown once its numbers are (default: the page's in harness.PAGES)

    def url(self, base: str, cap: int | None) -> str:
        query = {**self.params, **({"cap": str(cap)} if cap else {})}
        return f"{base}/{self.path}?{urllib.parse.urlencode(query)}"


# Different pages, texts and budgets: four pages with numbers, five texts, five policies, one allocator and a press.
SCENARIOS = [
    Scenario("", {"ex": "trophy", "start_k": "4"}),
    Scenario("", {"ex": "recipe", "start_k": "12"}),
    Scenario("", {"text": "The cat sat on the mat because it was tired, and then it slept.", "start_k": "3"}),
    Scenario("budget", {"ex": "code", "policy": "window", "k": "8"}),
    Scenario("budget", {"ex": "multilingual", "policy": "sink_window", "k": "12"}),
    Scenario("budget", {"ex": "trophy", "policy": "h2o", "k": "10"}),
    Scenario("spend", {"ex": "recipe", "sp_k": "5"}),
    # Its continuations are left out (two generations would double the test's time for no other numbers).
    Scenario("compress", {"ex": "code", "cp_gen": "false"},
             ('[data-testid="stMetricValue"] >> nth=4', '[data-testid="stPlotlyChart"]')),
]
assert len(SCENARIOS) == VISITORS

# (label, value, delta) of every metric on the page; wall times are measured, so they may differ from run to run.
_METRICS = """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stMetric"]')].map(m => {
  const text = sel => (m.querySelector(sel) || {innerText: ''}).innerText.trim();
  return [text('[data-testid="stMetricLabel"]'), text('[data-testid="stMetricValue"]'),
          text('[data-testid="stMetricDelta"]')];
})"""
_FAILURES = '[data-testid="stException"], [data-testid="stAlertContentError"]'
_WAITING = re.compile(r"Waiting for \d+ other requests?…")


def _ready(s: Scenario) -> tuple[str, ...]:
    return s.ready or tuple(PAGES[s.path][2])


def _is_time(label: str) -> bool:
    return label.lower().startswith("time")


@dataclass
class Visit:
    seconds: float  # from opening the link until the page's numbers are all shown
    opened_at: float  # time.monotonic() when the link was opened
    shown_at: float  # and when its numbers were all shown
    metrics: list[tuple[str, str, str]]
    waited: bool  # the page said "Waiting for N other requests…" on the way


async def _idle(page, timeout_s: float = PAGE_S) -> None:
    """As harness.wait_until_idle: no "Running..." status widget for 1.5 s."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if await page.locator('[data-testid="stStatusWidget"]').count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.5:
            return
        await page.wait_for_timeout(250)
    raise TimeoutError(f"the page was still running after {timeout_s:.0f} s")


async def _ready_or_failed(page, ready: tuple[str, ...], name: str) -> None:
    """Wait until every ``ready`` selector is shown; fail at once if an exception or error box shows first."""

    async def all_ready() -> None:
        for selector in ready:
            await page.locator(selector).first.wait_for(state="visible")

    done = asyncio.ensure_future(all_ready())
    failed = asyncio.ensure_future(page.locator(_FAILURES).first.wait_for(state="visible"))
    await asyncio.wait([done, failed], return_when=asyncio.FIRST_COMPLETED)
    for task in (done, failed):
        if not task.done():
            task.cancel()
    if failed.done() and not failed.cancelled() and failed.exception() is None:
        raise AssertionError(f"{name}: {await page.locator(_FAILURES).all_inner_texts()}")
    done.result()


async def _new_page(browser, timeout_s: float = PAGE_S):
    """A fresh context and its page: a new visitor (no cookies, no session) with its browser open."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    return page


async def _visit(page, url: str, ready: tuple[str, ...], shots: Path, name: str,
                 timeout_s: float = PAGE_S) -> Visit:
    """Open ``url`` in ``page`` (from :func:`_new_page`), read its numbers, then close its context."""
    try:
        start = time.monotonic()
        await page.goto(url)
        notice = page.get_by_text(_WAITING)
        saw_notice = asyncio.ensure_future(notice.first.wait_for(state="visible"))
        await _ready_or_failed(page, ready, name)
        shown_at = time.monotonic()
        seconds = shown_at - start
        await _idle(page, timeout_s)
        waited = saw_notice.done() and not saw_notice.cancelled() and saw_notice.exception() is None
        saw_notice.cancel()
        failures = await page.locator(_FAILURES).all_inner_texts()
        assert not failures, f"{name}: {failures}"
        assert not await notice.count(), f"{name}: the waiting notice stayed after the page finished"
        metrics = [tuple(m) for m in await page.evaluate(_METRICS)]
        assert metrics, f"{name}: no numbers shown"
        return Visit(seconds, start, shown_at, metrics, waited)
    except BaseException:
        await page.screenshot(path=str(shots / f"{name}-failed.png"))
        raise
    finally:
        await page.context.close()


async def _lone_then_bursts(url: str, shots: Path) -> tuple[list[Visit], list[tuple[list[Visit], float]]]:
    """The lone visits, and for each of :data:`BURST_CAPS` a burst and the seconds until its last visitor's numbers
    (the second burst only if the first missed the time bound)."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # Not timed: loads the model (in a fresh CI cache, converts its weights).
            await _visit(await _new_page(browser, FIRST_LOAD_S), f"{url}/?ex=lighthouse&cap=64", PAGES[""][2], shots,
                         "warm-up", FIRST_LOAD_S)
            lone = [await _visit(await _new_page(browser), s.url(url, LONE_CAP), _ready(s), shots, f"lone-{i}")
                    for i, s in enumerate(SCENARIOS)]
            bound = VISITORS * sum(v.seconds for v in lone) / len(lone)
            bursts = []
            for cap in BURST_CAPS:
                # The eight browsers are opened first, as a lone visitor's is: then all open their links at once.
                pages = await asyncio.gather(*(_new_page(browser) for _ in SCENARIOS))
                burst = await asyncio.gather(*(_visit(page, s.url(url, cap), _ready(s), shots, f"burst-{i}")
                                               for i, (page, s) in enumerate(zip(pages, SCENARIOS, strict=True))))
                # From the first link opened until the last visitor SAW its numbers: not the checks each visit makes
                # after (its 1.5 s of quiet, reading the metrics, closing its context), which a lone visit leaves out.
                bursts.append((burst, max(v.shown_at for v in burst) - min(v.opened_at for v in burst)))
                if bursts[-1][1] <= bound:
                    break
        finally:
            await browser.close()
    return lone, bursts


def _peak_bytes(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def test_eight_visitors_at_once_get_their_lone_numbers(server):
    if MISSING:
        pytest.fail(f"the load test cannot run: {MISSING}", pytrace=False)
    shots = server.log.parent
    lone, bursts = asyncio.run(_lone_then_bursts(server.url, shots))

    for burst, _ in bursts:
        for i, (alone, crowded) in enumerate(zip(lone, burst, strict=True)):
            assert ([m for m in crowded.metrics if not _is_time(m[0])]
                    == [m for m in alone.metrics if not _is_time(m[0])]), (
                f"visitor {i} ({SCENARIOS[i]}) got other numbers in the burst")

    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=10) as r:
        assert r.status == 200
    assert server.proc.poll() is None, server.tail()
    assert "Traceback" not in server.tail(400), server.tail(400)

    mean_lone = sum(v.seconds for v in lone) / len(lone)
    peak = _peak_bytes(server.proc.pid)
    summary = f"lone visits {[round(v.seconds, 2) for v in lone]} s (mean {mean_lone:.2f} s); " + "; ".join(
        f"burst {k + 1} of {VISITORS}: each {[round(v.seconds, 2) for v in burst]} s, the last {last:.2f} s = "
        f"{last / mean_lone:.2f} x a lone visit, {sum(v.waited for v in burst)} of them told they waited"
        for k, (burst, last) in enumerate(bursts)) + f"; server peak memory {peak / 2**30:.2f} GB"
    print(summary)
    assert bursts[-1][1] <= VISITORS * mean_lone, summary
    assert peak <= PEAK_BYTES, summary
