"""Write one example of every figure to a folder, for looking at them (not a test).

    python -m tests.figures.gallery [/tmp/figs]

Each figure becomes ``NAME.html`` (plotly.js inlined: works offline). If ``kaleido`` is
installed a PNG is written too; otherwise, if Chromium is on the PATH, ``--screenshot``
takes one of the HTML file. Data are synthetic but shaped like the real thing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from attnviz import figures as F

WORDS = (
    "The lighthouse keeper climbed the stairs every night , and the lamp turned over the dark sea . "
    '灯台 守 は 毎晩 🐱‍👤 <b> & " a_really_quite_long_token_label '
    "the keeper wrote in a log about ships , storms and the sea ."
).split()


def fake_attention(n: int, seed: int = 0, kind: int = 0) -> np.ndarray:
    """Causal attention rows: a sink on token 0 plus a diagonal / previous-token / random pattern."""
    rng = np.random.default_rng(seed)
    s = rng.random((n, n)) ** 5 * 0.4
    if kind % 4 == 0:
        s[:, 0] += 2.0
    elif kind % 4 == 1:
        s += np.eye(n) * 2.0
    elif kind % 4 == 2:
        s += np.eye(n, k=-1) * 2.0
        s[0, 0] += 1
    s = np.tril(s) + np.tril(np.full((n, n), 1e-9))
    return s / s.sum(axis=1, keepdims=True)


def labels(n: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(n)]


def build() -> dict:
    """name -> figure (or HTML string) for every figure type."""
    out: dict = {}
    n = 24
    lab = labels(n)
    w = fake_attention(n)
    out["attention_heatmap"] = F.attention_heatmap(w, lab, lab, title="Layer 3, head 5 of SmolLM2")
    w512 = fake_attention(512, kind=2)
    out["attention_heatmap_512"] = F.attention_heatmap(
        w512, labels(512), labels(512), title="Layer 3, head 5 (512 tokens)"
    )
    keep = w >= np.sort(w, axis=1)[:, -4:-3]  # top-4 per row
    budget = np.where(keep, w, 0)
    budget = budget / budget.sum(axis=1, keepdims=True)
    out["difference_heatmap"] = F.difference_heatmap(w, budget, lab, lab)
    out["keep_mask_heatmap"] = F.keep_mask_heatmap(keep, lab, lab, causal=True)
    out["keep_mask_heatmap_pooled"] = F.keep_mask_heatmap(
        np.tril(np.random.default_rng(1).random((600, 600)) < 0.2), labels(600), labels(600), causal=True
    )
    thumbs = np.array([[fake_attention(48, seed=10 * li + h, kind=li + h) for h in range(9)] for li in range(30)])
    out["head_grid"] = F.head_grid(thumbs, title="All 270 heads (30 layers × 9 heads)")
    out["head_grid_layer"] = F.head_grid(thumbs[4], layer_labels=["4"], title="Layer 4: every head")
    rng = np.random.default_rng(2)
    out["head_stat_heatmap"] = F.head_stat_heatmap(rng.random((30, 9)) * 0.9, "attention-sink share", fmt=".0%")
    n2 = 100
    out["token_lines"] = F.token_lines(
        fake_attention(n2, kind=2), labels(n2), selected=[40, 97], title="Layer 5, head 2: where two tokens look"
    )
    pts = []
    for pol, base in (("window", 0.6), ("top-k", 0.9), ("sink+window", 0.8), ("random", 0.3)):
        for keep_frac in (0.1, 0.25, 0.5, 0.75, 1.0):
            pts.append(dict(x=keep_frac, y=base * keep_frac**0.3, policy=pol, label=f"keep {keep_frac:.0%}"))
    # Pareto: maximal y for every x
    for p in pts:
        p["efficient"] = not any(q["x"] <= p["x"] and q["y"] > p["y"] for q in pts)
    out["frontier_plot"] = F.frontier_plot(pts, "share of attention pairs computed", "next-token agreement with full")
    ns = np.array([64, 128, 256, 512, 1024, 2048, 4096])
    out["attention_share_plot"] = F.attention_share_plot(
        {
            "first token (sink)": (ns, np.clip(0.3 + 0.1 * np.log2(ns / 64), 0, 1)),
            "last 64 tokens": (ns, 64 / ns * 0.9 + 0.05),
            "everything else": (ns, 1 - np.clip(0.3 + 0.1 * np.log2(ns / 64), 0, 1) - (64 / ns * 0.9 + 0.05)),
        },
        marker_n=300,
    )
    out["metric_bar"] = F.metric_bar(
        {"full": 12.1, "top-k 25%": 12.6, "window 25%": 19.8, "random 25%": 48.0},
        "Perplexity on this text (lower is better)",
        "perplexity",
        reference=12.1,
        highlight="top-k 25%",
    )
    q = rng.normal(size=(6, 4))
    k = rng.normal(size=(6, 4))
    toks = ["the", "cat", "saw", "the", "<dog>", "🐕"]
    scores = q @ k.T / 2.0
    causal = np.triu(np.ones((6, 6), bool), 1)
    masked = np.where(causal, -np.inf, scores)
    soft = np.exp(masked - masked.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    dims = [f"d{i}" for i in range(4)]
    out["matrix_q"] = F.matrix_figure(
        q, toks, dims, "Q: one query vector per token", x_title="dimension", y_title="token"
    )
    out["matrix_masked"] = F.matrix_figure(
        masked, toks, toks, "Masked scores: QKᵀ/√d, future keys −∞", fmt=".2f", x_title="key", y_title="query"
    )
    out["matrix_softmax"] = F.matrix_figure(
        soft,
        toks,
        toks,
        "Softmax: attention weights (rows sum to 1)",
        fmt=".2f",
        mask=causal,
        x_title="key",
        y_title="query",
    )
    changed = [i % 5 == 3 for i in range(n)]
    full = [lab[(i + 1) % n] for i in range(n)]
    bud = [("<?>" if c else full[i]) for i, c in enumerate(changed)]
    out["changed_predictions"] = F.changed_predictions_html(lab, changed, full, bud, sep=" ")
    return out


def main(folder: str = "/tmp/figs") -> None:
    dest = Path(folder)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        import kaleido  # noqa: F401

        have_kaleido = True
    except ImportError:
        have_kaleido = False
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    for name, fig in build().items():
        html_path = dest / f"{name}.html"
        if isinstance(fig, str):
            html_path.write_text(
                f"<html><meta charset='utf-8'><body style='font-family:sans-serif;max-width:1100px'>"
                f"{fig}</body></html>",
                encoding="utf-8",
            )
            height = 400
        else:
            fig.write_html(html_path, include_plotlyjs=True)
            height = int(fig.layout.height or 600) + 40
            print(f"{name}: {len(fig.to_json()) / 1e6:.2f} MB of JSON, {len(fig.data)} traces")
            if have_kaleido:
                fig.write_image(dest / f"{name}.png", width=1200)
                continue
        if chromium:
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--virtual-time-budget=4000",
                    f"--screenshot={dest / (name + '.png')}",
                    f"--window-size=1200,{height}",
                    html_path.resolve().as_uri(),
                ],
                check=False,
                capture_output=True,
                timeout=120,
            )


if __name__ == "__main__":
    main(*sys.argv[1:])
