"""Our presses equal NVIDIA kvpress 0.5.5's own, run on the same token ids (issue #17's proof).

``tools/kvpress_ref/results/reference.json`` is what kvpress's press classes kept and measured, run by
``tools/kvpress_ref/harness.py`` in a virtualenv of their own (kvpress needs transformers < 5.3; ``make
kvpress-reference`` makes it again). Here the same ids go through ``attnviz.measure.press.press_pass``:
the same kept count, KL within 2% (or 2e-3), top-1 within one position, perplexity within 1%, and exactly the
same kept positions in every layer and KV head (all 54 runs, checked when this test was written).

kvpress ran on transformers' model as it ships, its products through MKL; the app's model multiplies through
oneDNN (:mod:`attnviz.engine.linear`), whose float32 sums round differently. So the exact check runs on a model
with the stock products, and the app's model must keep the same positions but for near-ties (one per run, or 1 in
2,000: when this was written, 1 to 3 positions flipped in 7 of the 54 runs, all knorm but one) and meet every
other bound.
"""

import json
from pathlib import Path

import pytest
import torch

from attnviz.measure.passes import reference_pass
from attnviz.measure.press import press_pass
from attnviz.presses import get_press
from attnviz.text import Encoded

REF = Path(__file__).resolve().parents[2] / "tools" / "kvpress_ref" / "results"
IDS = json.loads((REF / "ids.json").read_text())
KVPRESS = json.loads((REF / "reference.json").read_text())
TEXTS = {t["name"]: t for t in IDS["texts"]}


def _params(run):
    """kvpress's parameters as ours (the harness reports every field, defaults included)."""
    press = get_press(run["press"])
    ours = {p.name for p in press.parameters()}
    return {k: v for k, v in run["params"].items() if k in ours}


@pytest.fixture(scope="module")
def smollm2_stock():
    """SmolLM2 with transformers' own products (MKL), as kvpress ran it."""
    from attnviz.models import load_model

    return load_model("smollm2", onednn=False)


@pytest.mark.parametrize("products", ["stock", "onednn"])
@pytest.mark.parametrize("name", sorted(TEXTS))
def test_presses_equal_kvpress_on_texts_we_do_not_ship(smollm2, smollm2_stock, name, products):
    lm = smollm2_stock if products == "stock" else smollm2
    text = TEXTS[name]
    kv = next(t for t in KVPRESS["texts"] if t["name"] == name)
    context = kv["context"]
    runs = [r for r in kv["runs"] if "error" not in r]
    assert {r["press"] for r in runs} >= {"streaming_llm", "snapkv", "tova", "knorm", "observed_attention",
                                          "expected_attention"}
    assert {r["compression_ratio"] for r in runs} >= {0.5, 0.75, 0.9}
    ref = reference_pass(lm, Encoded(ids=torch.tensor([text["ids"]]), truncated_from=None))
    rows = press_pass(lm, ref, context, [(get_press(r["press"], **_params(r)), r["compression_ratio"])
                                             for r in runs])
    m = ref.n_tokens - context
    for run, row in zip(runs, rows, strict=True):
        what = f"{run['press']} r={run['compression_ratio']}"
        theirs, ours = run["quality"], row.quality
        assert row.kept == run["kept"], what
        assert abs(ours.kl - theirs["kl"]) <= max(0.02 * theirs["kl"], 2e-3), what
        assert abs(ours.top1 - theirs["top1"]) * m <= 1 + 1e-6, what
        assert ours.ppl == pytest.approx(theirs["ppl"], rel=0.01), what
        assert ours.ppl_full == pytest.approx(theirs["ppl_full"], rel=1e-4), what
        same = total = 0
        for layer, heads in enumerate(run["kept_positions"]):
            for h, positions in enumerate(heads):
                mine = set(torch.nonzero(row.kept_mask[layer, h]).flatten().tolist())
                same += len(mine & set(positions))
                total += len(positions)
        differ = 0 if products == "stock" else max(1, total // 2000)
        assert same >= total - differ, f"{what}: {same} of {total} kept positions the same"
