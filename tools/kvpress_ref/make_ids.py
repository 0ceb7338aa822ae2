"""Token ids for the kvpress harness, made in the MAIN venv (attnviz's tokenizer and model, transformers 5.25).

The kvpress venv's transformers 5.2 tokenizes SmolLM2 differently (it prepends ``<|im_start|>``), so the harness
takes ids, never text.  Besides the ids this writes, per text, the main venv's log-probability of each next token
and its top-1 prediction (one full eager forward), which the harness compares with its own model.

Usage (from the repo root, main venv):
    python tools/kvpress_ref/make_ids.py --spec tools/kvpress_ref/runs.json --out tools/kvpress_ref/results/ids.json
"""

from __future__ import annotations

import argparse
import glob
import json
import pathlib
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def expand_runs(spec: dict) -> list[dict]:
    """``{"presses": [{"press", "params"}], "ratios": [...]}`` -> one run per press and ratio."""
    return [{"press": p["press"], "params": p.get("params", {}), "ratio": r}
            for p in spec["presses"] for r in spec["ratios"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", type=pathlib.Path, required=True, help="texts, token cap, context, presses, ratios")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))

    sys.path.insert(0, str(ROOT))
    import transformers

    from attnviz.measure.reference import encode_for
    from attnviz.models import load_model
    from attnviz.models.gguf_cache import cache_root

    lm = load_model("smollm2", attn_implementation="eager")
    texts = []
    runs = expand_runs(spec)
    for pattern in spec["texts"]:
        for path in sorted(glob.glob(str(ROOT / pattern))):
            text = pathlib.Path(path).read_text(encoding="utf-8")
            ids = encode_for(lm, text, max_tokens=spec["max_tokens"]).ids
            with torch.no_grad():
                logp = torch.log_softmax(lm.model(ids).logits[0, :-1].float(), -1)
            target = logp.gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
            texts.append({
                "name": pathlib.Path(path).name,
                "ids": ids[0].tolist(),
                "context": spec["context"],
                "runs": runs,
                "check": {"target_logprobs": target.tolist(), "top1": logp.argmax(-1).tolist(),
                          "transformers": transformers.__version__},
            })
            print(f"{pathlib.Path(path).name}: {ids.shape[1]} tokens", file=sys.stderr)
    folders = sorted(glob.glob(str(cache_root() / "smollm2" / f"*-transformers{transformers.__version__}")))
    out = {"model": folders[-1] if folders else None, "weights": lm.weights, "texts": texts}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
