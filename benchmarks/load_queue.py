"""Does one bounded queue for heavy passes shorten the wait of the first visitors in a burst?
``python benchmarks/load_queue.py``

Eight visitors arrive at once, each with a text of its own (a different window of the bundled essays,
``--tokens`` tokens), and each asks for what the start page computes: the text's reference (full attention, one
layer's weights captured) and one budget against it (``topk`` K=8, the same layer captured).  Each visitor is a
thread of one process, as Streamlit runs each session's script in a thread of the server, and torch runs as it
does there (no ``OMP_WAIT_POLICY`` or thread count set).  The burst runs

* ``none``: every visitor's passes at once, sharing the cores (the app before the queue);
* ``queue 1`` / ``queue 2``: passes through :class:`attnviz.engine.queue.PassQueue` with 1 or 2 slots (turns in
  the order the visitors arrived, a visitor's second pass included), torch's threads as they are (2 here);
* ``queue 2/1``: 2 slots, each pass on 1 thread (the cores shared out among the slots, as the app's queue does);

interleaved, ``--tries`` times each, beside a lone visitor timed in the same run.  It prints, per mode, the median
over tries of: when the first, second, fourth and last visitors had their numbers (seconds from the burst's start),
and the same as ratios to ``none`` and to a lone visit, with the machine's state (cores, torch threads, load average
before and after).  Nothing is cached between visits: every visit computes its passes afresh.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from attnviz.budget import Budget  # noqa: E402
from attnviz.engine.queue import PassQueue  # noqa: E402
from attnviz.measure import budget_pass, encode_for, reference_pass  # noqa: E402
from attnviz.models import load_model  # noqa: E402

LAYER = 13  # the start page's captured layer (ui.cached.SHARED_LAYER)
VISITORS = 8
MODES = ("none", "queue 1", "queue 2", "queue 2/1")
RANKS = (1, 2, 4, VISITORS)  # the k-th visitor to get its numbers


def windows(lm, tokens: int, count: int) -> list[str]:
    """``count`` texts of about ``tokens`` tokens each, consecutive windows of the two bundled essays."""
    ids = []
    for name in ("lighthouses", "rivers"):
        text = (ROOT / "attnviz" / "data" / f"{name}.txt").read_text(encoding="utf-8")
        ids += lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) < tokens * count:
        raise SystemExit(f"the essays hold {len(ids)} tokens, fewer than {count} x {tokens}")
    return [lm.tokenizer.decode(ids[i * tokens:(i + 1) * tokens]) for i in range(count)]


def visit(lm, text: str, queue: PassQueue | None) -> None:
    """The start page's two passes on ``text``, each in a turn of ``queue`` (if any), as ui.cached runs them."""
    since = time.monotonic()
    turn = functools.partial(queue.turn, since=since) if queue else contextlib.nullcontext
    enc = encode_for(lm, text, 1024)
    with turn():
        ref = reference_pass(lm, enc, capture=[LAYER])
    with turn():
        budget_pass(lm, ref, [Budget("topk", keys=8)], capture=[LAYER])


def lone_visit(lm, text: str) -> float:
    """Seconds of one visit alone, in a new thread as a Streamlit script runs (the main thread's torch was up to
    10x slower here, its OpenMP team spinning on a loaded machine)."""
    seconds = []

    def one() -> None:
        t = time.perf_counter()
        visit(lm, text, None)
        seconds.append(time.perf_counter() - t)

    thread = threading.Thread(target=one)
    thread.start()
    thread.join()
    return seconds[0]


def burst(lm, texts: list[str], mode: str) -> list[float]:
    """Seconds from the burst's start until each visitor had its numbers, sorted."""
    queue = None if mode == "none" else PassQueue(int(mode.split()[1].split("/")[0]))
    threads_each = int(mode.split("/")[1]) if "/" in mode else None
    done: list[float] = []
    start = threading.Barrier(len(texts) + 1)
    t0 = [0.0]

    def one(text: str) -> None:
        if threads_each:
            torch.set_num_threads(threads_each)  # this thread's count (and the default of threads started later)
        start.wait()
        visit(lm, text, queue)
        done.append(time.perf_counter() - t0[0])

    threads = [threading.Thread(target=one, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    t0[0] = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    return sorted(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128, help="tokens per visitor's text (128)")
    parser.add_argument("--tries", type=int, default=3, help="bursts per mode, interleaved (3)")
    parser.add_argument("--json", type=Path, help="also write the raw times here")
    args = parser.parse_args()

    lm = load_model("smollm2")
    texts = windows(lm, args.tokens, VISITORS)
    load_before = os.getloadavg()
    lone_visit(lm, texts[0])  # warm-up
    lone = []
    times: dict[str, list[list[float]]] = {m: [] for m in MODES}
    for _ in range(args.tries):
        for mode in MODES:
            lone.append(lone_visit(lm, texts[len(lone) % VISITORS]))
            times[mode].append(burst(lm, texts, mode))
    load_after = os.getloadavg()

    lone_s = statistics.median(lone)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads; "
          f"load average (1/5/15 min) before {load_before}, after {load_after}")
    print(f"{VISITORS} visitors x {args.tokens} tokens, {args.tries} bursts per mode (interleaved); lone visit "
          f"{lone_s:.2f} s (median of {len(lone)}: {', '.join(f'{x:.2f}' for x in lone)})")
    medians = {m: [statistics.median(b[r - 1] for b in times[m]) for r in RANKS] for m in MODES}
    print(f"{'mode':10} " + " ".join(f"{'visitor ' + str(r):>22}" for r in RANKS))
    for mode in MODES:
        cells = [f"{s:6.2f} s {s / lone_s:4.1f}x {s / medians['none'][i]:4.2f}" for i, s in enumerate(medians[mode])]
        print(f"{mode:10} " + " ".join(f"{c:>22}" for c in cells))
    print("cells: seconds from the burst's start until the k-th visitor had its numbers (median over bursts), "
          "that / a lone visit, that / the same visitor without a queue")
    if args.json:
        args.json.write_text(json.dumps({"lone": lone, "bursts": times, "tokens": args.tokens,
                                         "load_before": load_before, "load_after": load_after}, indent=1))


if __name__ == "__main__":
    main()
