"""What the browser tests share: a `streamlit run app.py` server on a free port, Chromium through Playwright, and
waits for a page to finish.  The fixtures that use them are in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("ATTNVIZ_SCREENSHOT_DIR", ROOT / "docs" / "screenshots"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
FIRST_LOAD_S = 600  # CI starts with an empty model cache: the first page converts the weights
PAGE_S = 420  # a page's first run (the frontier sweep, two 40-token generations) on 2 busy cores
NEW_TEXT = "The cat sat on the mat because it was tired."  # 11 tokens

# url path -> (screenshot name, page title (h1), selectors that appear once the page has run to its end)
PAGES = {
    "": ("start", "Attention in one minute",
         ['[data-testid="stMetricValue"] >> nth=1', '[data-testid="stPlotlyChart"]']),
    "explore": ("explore", "Explore attention", ['[data-testid="stPlotlyChart"]']),
    "budget": ("budget", "Spend an attention budget",
               ['[data-testid="stMetricValue"] >> nth=8', '[data-testid="stPlotlyChart"] >> nth=2',
                '[data-testid="stDownloadButton"]']),
    "frontier": ("frontier", "Quality vs compute",
                 ['[data-testid="stDataFrame"]', '[data-testid="stPlotlyChart"] >> nth=1']),
    "spend": ("spend", "Spend one budget",
              ['[data-testid="stMetricValue"] >> nth=7', '[data-testid="stPlotlyChart"] >> nth=2']),
    "generate": ("generate", "Generate text under a budget",
                 ['[data-testid="stMetricValue"] >> nth=1', '[data-testid="stAlertContentSuccess"], '
                  '[data-testid="stAlertContentWarning"]']),
    "inside": ("inside", "Inside one attention head", ['[data-testid="stTabs"]']),
    "compress": ("compress", "Compress the cache",
                 ['[data-testid="stMetricValue"] >> nth=4', '[data-testid="stPlotlyChart"]',
                  '[data-testid="stAlertContentSuccess"], [data-testid="stAlertContentWarning"]']),
    "methods": ("methods", "Methods and formulas", ['h3:has-text("Views")']),
}


try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # reported below
    Page = expect = sync_playwright = None


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if sync_playwright is None:
        return "the playwright package is missing (pip install -r requirements-dev.txt)"
    return None


MISSING = _missing()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run app.py` on a free port; its output goes to a log shown when a test fails."""

    def __init__(self, log: Path, env: dict[str, str] | None = None, python: str = sys.executable) -> None:
        """``env`` is laid over this process's environment (a value of None removes a name); ``python`` runs
        streamlit (another virtualenv's, for the Cloud-path test)."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        environ = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
               "ATTNVIZ_LOG_PASSES": "1"}  # one log line per model pass (budget_passes counts them)
        for name, value in (env or {}).items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        cmd = [python, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
               "--server.port", str(self.port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false",
               # no "source file changed" prompt in the status widget while someone edits the work tree
               "--server.fileWatcherType", "none"]
        self._out = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=self._out, stderr=subprocess.STDOUT)

    def wait_until_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=5) as r:
                    if r.status == 200:
                        return
            time.sleep(0.5)
        raise TimeoutError(f"streamlit did not answer on port {self.port} within {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        self._out.flush()
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


@contextlib.contextmanager
def running(server: Server):
    """``server`` once it answers, stopped when the ``with`` ends (also when it never came up)."""
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


def wait_until_idle(page: Page, timeout_s: float = PAGE_S) -> None:
    """Wait until no script run is in progress (Streamlit's "Running..." status widget stays away for 1.5 s)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.5:
            return
        page.wait_for_timeout(250)
    raise TimeoutError(f"the page was still running after {timeout_s:.0f} s")


def wait_for_page(page: Page, server: Server, path: str, timeout_s: float = PAGE_S) -> None:
    """Wait until page ``path`` has run to its end and drawn everything; on failure show a screenshot and the log."""
    _, title, ready = PAGES[path]
    try:
        expect(page.locator("h1").first).to_have_text(title, timeout=timeout_s * 1000)
        for selector in ready:
            page.locator(selector).first.wait_for(state="visible", timeout=timeout_s * 1000)
        wait_until_idle(page, timeout_s)
        # Charts and tables are drawn by lazily loaded code after the run: wait for them too.
        for chart in page.locator('[data-testid="stPlotlyChart"]').all():
            chart.locator(".main-svg").first.wait_for(state="attached", timeout=120_000)
        for grid in page.locator('[data-testid="stDataFrame"]').all():
            grid.locator('[data-testid="data-grid-canvas"]').first.wait_for(state="attached", timeout=120_000)
        expect(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=120_000)
    except Exception as exc:  # noqa: BLE001 - turned into a failure that shows what the browser saw
        shot = server.log.with_name(f"{PAGES[path][0]}-failed.png")
        page.screenshot(path=str(shot))
        pytest.fail(f"page /{path} did not finish: {exc}\nscreenshot: {shot}\n--- server log ---\n{server.tail()}")
    page.wait_for_timeout(500)


def assert_no_failure(page: Page, server: Server, where: str) -> None:
    problems = {
        "exception box": page.locator('[data-testid="stException"]').count(),
        "error box": page.locator('[data-testid="stAlertContentError"]').count(),
        "'Traceback' text": page.get_by_text("Traceback").count(),
    }
    shown = {k: n for k, n in problems.items() if n}
    if shown:
        boxes = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()
        pytest.fail(f"{where}: {shown}\n{boxes}\n--- server log ---\n{server.tail()}")


# A metric label or value too long for its place is cut with an ellipsis ("Attention compute sa…", "1.75…"):
# none may be, at 1400 px or narrower (metrics wrap onto another line instead).
_CUT_TEXT = """(scope) => [...document.querySelectorAll(scope + ' *')]
                         .filter(e => getComputedStyle(e).textOverflow === 'ellipsis' && e.scrollWidth > e.clientWidth)
                         .map(e => e.textContent)"""


def cut_text(page: Page, scope: str) -> list[str]:
    """Texts inside elements matching ``scope`` that are cut off with an ellipsis."""
    return page.evaluate(_CUT_TEXT, scope)


def assert_labels_fit(page: Page, where: str) -> None:
    cut = cut_text(page, '[data-testid="stMetric"]')
    assert not cut, f"{where}: metric labels or values cut off at this width: {cut}"


def metric_values(page: Page) -> list[str]:
    return page.locator('[data-testid="stMain"] [data-testid="stMetricValue"]').all_inner_texts()


def wait_for_metrics_change(page: Page, before: list[str], timeout_s: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = metric_values(page)
        if now and now != before and len(now) == len(before):
            wait_until_idle(page)
            return metric_values(page)
        page.wait_for_timeout(250)
    raise AssertionError(f"the metrics did not change from {before}")


def sidebar_text(page: Page):
    return page.locator('[data-testid="stSidebar"] [data-testid="stTextArea"] textarea')


