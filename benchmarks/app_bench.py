"""App benchmark, measured in a real browser (not a timed test): ``python benchmarks/app_bench.py``.

Starts ``streamlit run app.py``, drives Debian's Chromium with Playwright, and prints, each as the median of
several tries and beside one eager forward of the same text measured in this process (so the ratio holds on a
noisy machine):

* slider move -> updated metrics and heatmap on the start page, at 128 and 512 tokens;
* a reload with the model cached, until the start page shows its numbers;
* a 6-policy x 8-budget frontier sweep at 128 tokens (each try on a text not swept before);
* the JSON size of the heatmap figures for 512 tokens;
* the server's peak resident memory at 512 and at 1024 tokens.

Needs /usr/bin/chromium (apt-get install chromium) and the playwright package (requirements-dev.txt).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"slider@128": (1.0, 2.5), "slider@512": (3.0, 2.0), "reload": (3.0, None), "frontier@128": (20.0, None)}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("streamlit did not start")


def peak_rss_gb(pid: int) -> float:
    """Peak resident set (VmHWM) of the server process, in GB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def wait_idle(page, timeout: float = 600) -> float:
    """Wait until no script run is shown as running; returns the time it was first seen idle.

    Checked in the page on each animation frame (no round trip per check: with 2 cores, polling from here
    would take CPU from the server being measured).
    """
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           polling="raf", timeout=timeout * 1000)
    return time.perf_counter()


# Resolves (with the page's clock) once the metric values and the heatmap's title (it names K) both differ from
# now, after the next frame is painted: what the user waits for. Streamlit's "running" indicator goes away
# about 0.1 s later; that is not waited for. Reads textContent (no forced layout) to disturb the page little.
_WATCH_MOVE = """() => {
  const metrics = () => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stMetricValue"]')]
                          .map(e => e.textContent).join('|');
  const title = () => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .gtitle')]
                        .map(e => e.textContent).join('|');
  const before = [metrics(), title()];
  window.__attnvizDone = new Promise(resolve => {
    const check = () => {
      if (metrics() !== before[0] && title() !== before[1]) {
        observer.disconnect();
        requestAnimationFrame(() => setTimeout(() => resolve(performance.now()), 0));
      }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, {subtree: true, childList: true, characterData: true});
  });
  return performance.now();
}"""


def wait_start_page(page, timeout: float = 900) -> None:
    page.locator('[data-testid="stMetricValue"]').nth(1).wait_for(state="visible", timeout=timeout * 1000)
    page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(state="attached", timeout=timeout * 1000)
    wait_idle(page, timeout)
    page.wait_for_timeout(1500)
    wait_idle(page, timeout)


def slider_move_seconds(page, tries: int) -> list[float]:
    """Press the right arrow on the start page's slider; time until the numbers and the heatmap show the new K.

    Always to the right, so every try asks for a budget not seen before (a cached result would be instant).
    The page itself watches for the change (a MutationObserver), timed with the page's own clock; each try
    then waits for the run to end before the next.
    """
    slider = page.get_by_role("slider", name="Links each word may keep (K)")
    times = []
    for _ in range(tries):
        slider.focus()
        t0 = page.evaluate(_WATCH_MOVE)
        slider.press("ArrowRight")
        t1 = page.evaluate("() => window.__attnvizDone")
        times.append((t1 - t0) / 1000)
        wait_idle(page)
        page.wait_for_timeout(500)
    return times


def frontier_seconds(page, url: str, tries: int) -> list[float]:
    """Open the frontier page on a text whose reference the start page has just made; time until its table shows.

    Each try uses a text not swept before (the page keeps finished sweeps): the lighthouse example with a
    different first sentence, capped at 128 tokens, so every try does the same work from cold.
    """
    from urllib.parse import urlencode

    from ui.examples import EXAMPLES

    times = []
    for i in range(tries):
        query = urlencode({"text": f"Try {i + 1}. {EXAMPLES['lighthouse'][1]}", "cap": 128})
        page.goto(f"{url}/?{query}")
        wait_start_page(page)
        t0 = time.perf_counter()
        page.goto(f"{url}/frontier?{query}")
        page.locator('[data-testid="stDataFrame"]').first.wait_for(state="visible", timeout=600_000)
        times.append(time.perf_counter() - t0)
        wait_idle(page)
    return times


@functools.cache
def eager_model():
    from attnviz.models import load_model

    return load_model("smollm2", attn_implementation="eager", onednn=False)


def eager_forward_seconds(n_tokens: int, tries: int = 5) -> float:
    from attnviz.bench import bench_text, eager_seconds
    from attnviz.measure import encode_for

    lm = eager_model()
    return eager_seconds(lm.model, encode_for(lm, bench_text(), n_tokens).ids, tries)


def heatmap_json_mb(n_tokens: int) -> dict[str, float]:
    import numpy as np

    from attnviz.figures import attention_heatmap, difference_heatmap, head_grid

    rng = np.random.default_rng(0)
    w = np.tril(rng.random((n_tokens, n_tokens))).astype(np.float32)
    w /= w.sum(1, keepdims=True)
    labels = [f"tok{i}" for i in range(n_tokens)]
    thumbs = rng.random((30, 9, 32, 32)).astype(np.float32)
    figs = {"attention_heatmap": attention_heatmap(w, labels, labels),
            "difference_heatmap": difference_heatmap(w, w[::-1, ::-1].copy(), labels, labels),
            "head_grid (30x9)": head_grid(thumbs)}
    return {name: len(fig.to_json()) / 2**20 for name, fig in figs.items()}


def main() -> int:
    from playwright.sync_api import sync_playwright

    tries = int(os.environ.get("ATTNVIZ_BENCH_TRIES", "5"))
    rows = []

    def report(name: str, seconds: float, forward: float | None, limits) -> None:
        limit_s, limit_fwd = limits if limits else (None, None)
        ratio = None if forward is None else seconds / forward
        ok = (limit_s is None or seconds <= limit_s) and (limit_fwd is None or ratio <= limit_fwd)
        rows.append({"figure": name, "seconds": round(seconds, 3), "forwards": None if ratio is None else
                     round(ratio, 2), "target_s": limit_s, "target_forwards": limit_fwd, "ok": ok})
        extra = "" if ratio is None else f" = {ratio:.2f} eager forwards"
        print(f"{name:<28} {seconds:7.2f} s{extra}   target <= {limit_s} s"
              f"{'' if limit_fwd is None else f' and <= {limit_fwd} forwards'}  {'OK' if ok else 'OVER'}", flush=True)

    for name, mb in heatmap_json_mb(512).items():
        print(f"{name + ' @512 JSON':<28} {mb:7.2f} MB   target <= 2 MB  {'OK' if mb <= 2 else 'OVER'}", flush=True)
        rows.append({"figure": f"{name} JSON @512", "mb": round(mb, 3), "ok": mb <= 2})

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for n in (128, 512):
            proc, url = start_server()
            try:
                page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
                page.goto(f"{url}/?ex=long&cap={n}")
                wait_start_page(page)
                before = eager_forward_seconds(n)
                moves = slider_move_seconds(page, tries)
                forward = statistics.median([before, eager_forward_seconds(n)])
                report(f"slider move @{n}", statistics.median(moves), forward, TARGETS[f"slider@{n}"])
                if n == 128:
                    reloads = []
                    for _ in range(tries):
                        t0 = time.perf_counter()
                        page.reload()
                        wait_start_page(page)
                        reloads.append(time.perf_counter() - t0 - 1.5)  # minus wait_start_page's settling pause
                    report("reload, model cached", statistics.median(reloads), None, TARGETS["reload"])
                    sweeps = frontier_seconds(page, url, max(3, tries // 2))
                    report("frontier 6x8 @128", statistics.median(sweeps), statistics.median(
                        [forward, eager_forward_seconds(n)]), TARGETS["frontier@128"])
                else:
                    for path in ("explore", "budget"):
                        page.goto(f"{url}/{path}?ex=long&cap=512")
                        page.locator('[data-testid="stPlotlyChart"]').first.wait_for(state="visible",
                                                                                    timeout=600_000)
                        wait_idle(page)
                rss = peak_rss_gb(proc.pid)
                limit = 1.5 if n == 512 else None
                ok = limit is None or rss <= limit
                print(f"{'server peak RSS @' + str(n):<28} {rss:7.2f} GB"
                      f"{'' if limit is None else f'   target <= {limit} GB  ' + ('OK' if ok else 'OVER')}", flush=True)
                rows.append({"figure": f"server peak RSS @{n}", "gb": round(rss, 3), "ok": ok})
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        proc, url = start_server()
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            for path in ("", "explore", "budget"):
                page.goto(f"{url}/{path}?ex=long&cap=1024")
                page.locator('[data-testid="stPlotlyChart"]').first.wait_for(state="visible", timeout=900_000)
                wait_idle(page, 900)
            rss = peak_rss_gb(proc.pid)
            ok = rss <= 2.5
            print(f"{'server peak RSS @1024':<28} {rss:7.2f} GB   target <= 2.5 GB  {'OK' if ok else 'OVER'}")
            rows.append({"figure": "server peak RSS @1024", "gb": round(rss, 3), "ok": ok})
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        browser.close()
    print(json.dumps({"machine": f"{os.cpu_count()} CPU cores", "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
