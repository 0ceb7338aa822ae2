"""Benchmarks as ratios, measured side by side in one process (``python -m attnviz bench``).

The baseline everywhere is transformers' own eager attention with
``output_attentions=True`` on the same text in the same process: the machine is
shared and noisy, so absolute seconds mean little but ratios hold.  Each figure
is the median of ``repeat`` tries, the tries of different figures interleaved.
Memory and model-load figures run in fresh child processes.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .budget import Budget
from .engine.run import BudgetRun
from .measure.passes import encode_for, reference_and_budgets
from .policies.ladders import key_ladder

__all__ = ["run_bench", "bench_text", "eager_seconds"]

TARGETS = {  # figure -> (limit, description); from the engine issue
    "full_vs_eager": (1.15, "full-policy forward through our kernel / eager"),
    "topk_vs_eager": (1.5, "topk (K=32) forward / eager"),
    "h2o_vs_eager": (3.0, "h2o (K=32) forward / eager"),
}
SWEEP_TARGET = {128: 0.75, 512: 1.0}
MEMORY_TARGET_GB = {512: 1.5, 1024: 2.5}


def bench_text() -> str:
    """The shipped prose used by benchmarks and tests (about 1,300 tokens for SmolLM2)."""
    return (Path(__file__).parent / "data" / "lighthouses.txt").read_text(encoding="utf-8")


def eager_seconds(eager, ids: torch.Tensor, tries: int = 5) -> float:
    """Median seconds of ``tries`` forwards of transformers' eager attention with ``output_attentions=True``
    on ``ids`` ``(1, n)``, after one warm-up: the unit ("one eager forward") every benchmark divides by."""
    with torch.inference_mode():
        eager(ids, output_attentions=True)
        return statistics.median(_timer(lambda: eager(ids, output_attentions=True)) for _ in range(tries))


def _timer(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _interleaved(figures: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds per figure, running one try of each figure in turn (noise hits all alike)."""
    times: dict[str, list[float]] = {name: [] for name in figures}
    for fn in figures.values():  # warm-up: first calls pay for allocations
        fn()
    for _ in range(repeat):
        for name, fn in figures.items():
            times[name].append(_timer(fn))
    return {name: statistics.median(ts) for name, ts in times.items()}


def _child(code: str, env: dict | None = None) -> dict:
    """Run ``code`` in a fresh Python; it prints one JSON line last."""
    env = {**os.environ, **(env or {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


_CHILD_SWEEP = """
import json, time
from attnviz.bench import bench_text
from attnviz.policies.ladders import key_ladder
from attnviz.budget import Budget
from attnviz.measure import sweep
from attnviz.models import load_model
lm = load_model("smollm2")
n = {n}
t0 = time.perf_counter()
sweep(lm, bench_text(), [Budget("topk", keys=k) for k in key_ladder(n)], max_tokens=n)
# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the forking parent (this benchmark, with
# two models loaded), so it would report the parent's size; VmHWM belongs to this process's own memory map.
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({{"seconds": time.perf_counter() - t0, "peak_gb": int(hwm.split()[1]) / 2**20}}))
"""

_CHILD_LOAD = """
import json
from attnviz.models import load_model
lm = load_model("smollm2")
print(json.dumps({"seconds": lm.load_seconds, "cache_hit": lm.cache_hit}))
"""


def run_bench(tokens: list[int] = (128, 512), repeat: int = 3, as_json: bool = False) -> int:
    """Print the benchmark figures (and whether each meets its target); returns 0."""
    from .models import load_model

    torch.set_grad_enabled(False)
    lm = load_model("smollm2")
    eager = load_model("smollm2", attn_implementation="eager", onednn=False).model
    text = bench_text()
    report: dict = {"machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, "
                               f"{torch.get_num_threads()} threads", "rows": []}

    def add(name: str, value: float, limit: float | None, unit: str, note: str) -> None:
        ok = None if limit is None else value <= limit
        report["rows"].append({"figure": name, "value": round(value, 3), "limit": limit, "unit": unit,
                               "ok": ok, "note": note})
        mark = "" if ok is None else ("  OK" if ok else "  OVER")
        lim = "" if limit is None else f" (target <= {limit})"
        print(f"{name:<34}{value:>9.3f} {unit}{lim}{mark}   {note}", file=sys.stderr if as_json else sys.stdout,
              flush=True)

    for n in tokens:
        _bench_length(lm, eager, encode_for(lm, text, max_tokens=n), repeat, add)

    for n in sorted(set(tokens) | set(MEMORY_TARGET_GB)):
        child = _child(_CHILD_SWEEP.format(n=n))
        add(f"sweep peak memory @{n}", child["peak_gb"], MEMORY_TARGET_GB.get(n), "GB",
            "peak resident set of a fresh process: model load + 8-budget topk sweep")

    with tempfile.TemporaryDirectory() as cache:
        first = _child(_CHILD_LOAD, {"ATTNVIZ_CACHE_DIR": cache})
        second = _child(_CHILD_LOAD, {"ATTNVIZ_CACHE_DIR": cache})
    add("model load, first start", first["seconds"], None, "s", "GGUF dequantisation, empty cache")
    add("model load, second start", second["seconds"], 3.0, "s", "converted-weights cache present")
    if as_json:
        print(json.dumps(report))
    return 0



def _bench_length(lm, eager, enc, repeat: int, add: Callable) -> None:
    """Forward and sweep ratios on one text length."""
    n, ids = enc.n_tokens, enc.ids

    def eager_fwd():
        return eager(ids, output_attentions=True)

    def ours(budget: Budget):
        return lambda: lm.model(ids, attnviz=BudgetRun([budget]))

    med = _interleaved({"eager": eager_fwd, "full": ours(Budget("full")),
                        "topk": ours(Budget("topk", keys=32)), "h2o": ours(Budget("h2o", keys=32))}, repeat)
    add(f"eager forward @{n}", med["eager"], None, "s", "baseline: eager attention, output_attentions=True")
    for key, fig in (("full", "full_vs_eager"), ("topk", "topk_vs_eager"), ("h2o", "h2o_vs_eager")):
        add(f"{key} / eager @{n}", med[key] / med["eager"], TARGETS[fig][0], "x", TARGETS[fig][1])

    ladder = key_ladder(n)
    ratios = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8)

    def sweep_keys():
        return reference_and_budgets(lm, enc, [Budget("topk", keys=k) for k in ladder])

    def sweep_ratios():
        return reference_and_budgets(lm, enc, [Budget("topk", ratio=r) for r in ratios])

    def eager8():
        for _ in range(8):
            eager_fwd()

    med = _interleaved({"eager8": eager8, "keys": sweep_keys, "ratios": sweep_ratios}, repeat)
    add(f"sweep 8 topk K / 8 eager @{n}", med["keys"] / med["eager8"], SWEEP_TARGET.get(n), "x",
        f"K={ladder}, including the full reference pass")
    add(f"sweep 8 topk R / 8 eager @{n}", med["ratios"] / med["eager8"], None, "x",
        f"R={list(ratios)} (no prefix can be reused), including the reference")
