"""What pressing costs, in eager forwards of the whole text (issue #17's speed targets), measured in one process.

* one press at 512 context tokens + 128 continuation tokens: at most 2.5 forwards;
* a frontier of 6 presses x 5 ratios at that size: at most 40 forwards.

Both are timed given the text's reference (the full run, cached by the app and shared by every page); the
reference itself is timed too, and "from scratch" adds it.  The unit is one forward of transformers' eager
attention with ``output_attentions=True`` on the whole text, timed in the same process just before and after
(the machine is shared: ratios hold, seconds do not).

    python benchmarks/press_speed.py [--context 512] [--continuation 128] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnviz.bench import bench_text, eager_seconds  # noqa: E402
from attnviz.budget import Budget  # noqa: E402
from attnviz.measure.passes import encode_for, reference_pass  # noqa: E402
from attnviz.measure.press import policy_press_pass, press_pass  # noqa: E402
from attnviz.models import load_model  # noqa: E402
from attnviz.presses import get_press, kept_count  # noqa: E402

FRONTIER_PRESSES = ("streaming_llm", "snapkv", "tova", "knorm", "expected_attention", "pyramidkv")  # the page's
RATIOS = (0.25, 0.5, 0.75, 0.875, 0.95)
POLICIES = ("window", "sink_window", "h2o")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--continuation", type=int, default=128)
    ap.add_argument("--profile", action="store_true", help="print where one press's time goes")
    args = ap.parse_args()
    c = args.context
    lm = load_model("smollm2")
    eager = load_model("smollm2", attn_implementation="eager", onednn=False).model
    enc = encode_for(lm, bench_text(), c + args.continuation)
    before = eager_seconds(eager, enc.ids, 3)

    ref_s = _timed(lambda: reference_pass(lm, enc))
    ref = reference_pass(lm, enc)
    singles = {name: [_timed(lambda name=name: press_pass(lm, ref, c, [(get_press(name), 0.5)])) for _ in range(3)]
               for name in ("snapkv", "knorm", "expected_attention", "adakv")}
    runs = [(get_press(p), r) for p in FRONTIER_PRESSES for r in RATIOS]
    frontier_s = _timed(lambda: press_pass(lm, ref, c, runs))
    budgets = [Budget(p, keys=k) for p in POLICIES for k in dict.fromkeys(kept_count(c, r) for r in RATIOS)]
    policies_s = _timed(lambda: policy_press_pass(lm, ref, c, budgets))
    after = eager_seconds(eager, enc.ids, 3)
    unit = (before + after) / 2

    print(f"{enc.n_tokens} tokens ({c} context + {enc.n_tokens - c} continuation); one eager forward: "
          f"{before:.3f} s before, {after:.3f} s after")
    print(f"reference (full run, kept keys and queries): {ref_s:.2f} s = {ref_s / unit:.2f} forwards")
    for name, times in singles.items():
        med = statistics.median(times)
        print(f"one press, {name} r=0.5: {med:.2f} s = {med / unit:.2f} forwards (target <= 2.5); "
              f"from scratch with the reference {(med + ref_s) / unit:.2f}")
    print(f"frontier, {len(FRONTIER_PRESSES)} presses x {len(RATIOS)} ratios: {frontier_s:.1f} s = "
          f"{frontier_s / unit:.1f} forwards (target <= 40); from scratch {(frontier_s + ref_s) / unit:.1f}")
    print(f"the page's frontier adds {len(budgets)} evicting-policy runs: {policies_s:.1f} s = "
          f"{policies_s / unit:.1f} forwards; whole frontier {(frontier_s + policies_s) / unit:.1f}")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(press_pass, lm, ref, c, [(get_press("snapkv"), 0.5)])
        pstats.Stats(prof).sort_stats("cumulative").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
