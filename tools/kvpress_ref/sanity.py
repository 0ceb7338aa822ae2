"""Sanity checks of the kvpress harness (kvpress venv): what must hold whatever the text.

1. At ratio 0.0 (nothing removed) every press keeps all C positions, with KL 0, top-1 1 and ppl == ppl_full.
2. streaming_llm at ratio r keeps, in every layer and KV head, the first n_sink=4 positions plus the most recent
   int(C * (1 - r)) - 4 (kvpress's own float arithmetic: C=200, r=0.9 keeps 19, not 20).
3. A context too short for a press is an error string in its run, not a crash.

Usage: python tools/kvpress_ref/sanity.py tools/kvpress_ref/results/ids.json   (exit 0 if all hold)
"""

from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from harness import PRESSES, Runner, find_model_folder, load_model  # noqa: E402


def main(argv: list[str]) -> int:
    spec = json.loads(pathlib.Path(argv[0]).read_text(encoding="utf-8"))
    text = spec["texts"][0] if "texts" in spec else spec
    model = load_model(pathlib.Path(spec["model"]) if spec.get("model") else find_model_folder())
    runner = Runner(model, text["ids"], text["context"])
    C = runner.C
    failures = []

    for name in PRESSES:
        params = {"window_size": 16} if name in ("snapkv", "adakv") else {}
        row = runner.run(name, params, 0.0)
        q = row.get("quality")
        ok = (q is not None and q["kl"] == 0.0 and q["top1"] == 1.0 and q["ppl"] == q["ppl_full"]
              and row["kept_min"] == row["kept_max"] == C)
        print(f"ratio 0.0 {name}: {'ok' if ok else 'FAIL'} {row.get('error') or q}")
        if not ok:
            failures.append(f"{name} at ratio 0")

    for ratio in (0.5, 0.75, 0.9):
        row = runner.run("streaming_llm", {"n_sink": 4}, ratio)
        n_kept = max(1, int(C * (1 - ratio)))
        expected = list(range(4)) + list(range(C - (n_kept - 4), C))
        ok = all(head == expected for layer in row["kept_positions"] for head in layer)
        print(f"streaming_llm r={ratio}: kept {row['kept']} (expected {n_kept}) {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"streaming_llm at {ratio}")

    row = runner.run("snapkv", {"window_size": C}, 0.5)
    ok = "error" in row and "window size" in row["error"]
    print(f"snapkv window_size={C} on a context of {C}: {row.get('error')} {'ok' if ok else 'FAIL'}")
    if not ok:
        failures.append("too-short context")

    print("all sanity checks hold" if not failures else f"FAILED: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
