"""What allocators cost, in eager forwards on the same text (issue #16's speed targets), measured in one process.

* ``marginal``'s calibration (value curves on the calibration text, at the evaluated length): at most 40;
* a 5-allocator x 4-size frontier (policy ``topk``, reference included): at most 25.

The unit is one forward of transformers' eager attention with ``output_attentions=True`` on the evaluated text,
timed in the same process just before and after (the machine is shared: ratios hold, seconds do not).

    python benchmarks/allocator_speed.py [--tokens 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attnviz.allocators.marginal import value_curves  # noqa: E402
from attnviz.bench import bench_text, eager_seconds  # noqa: E402
from attnviz.budget import Budget  # noqa: E402
from attnviz.measure.passes import encode_for, reference_and_budgets  # noqa: E402
from attnviz.models import load_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    lm = load_model("smollm2")
    eager = load_model("smollm2", attn_implementation="eager", onednn=False).model
    enc = encode_for(lm, bench_text(), args.tokens)
    before = eager_seconds(eager, enc.ids)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ATTNVIZ_CACHE_DIR"] = tmp  # an empty cache: the calibration really runs
        t0 = time.perf_counter()
        value_curves(lm, "rivers", enc.n_tokens)
        calib = time.perf_counter() - t0
        budgets = [Budget("topk", keys=k, allocator=a) for a in ("uniform", "pyramid", "heads", "price", "marginal")
                   for k in (4, 8, 16, 32)]
        value_curves(lm, "rivers", enc.n_tokens)  # the frontier's marginal uses cached curves (computed once above)
        t0 = time.perf_counter()
        reference_and_budgets(lm, enc, budgets)
        frontier = time.perf_counter() - t0
    after = eager_seconds(eager, enc.ids)
    unit = (before + after) / 2
    print(f"{enc.n_tokens} tokens; one eager forward: {before:.3f} s before, {after:.3f} s after")
    print(f"marginal calibration: {calib:.1f} s = {calib / unit:.1f} forwards (target <= 40)")
    print(f"5 allocators x 4 sizes, reference included (curves cached): {frontier:.1f} s = "
          f"{frontier / unit:.1f} forwards (target <= 25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
