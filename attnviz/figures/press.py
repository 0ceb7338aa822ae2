"""Press figures: which context positions a press kept (layers, or layer × KV head, against tokens), and the
quality-vs-KV-cache frontier of presses beside the project's evicting policies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ._common import axis_categories, category_axis, colorbar, colorbar_px, f32, layout_dict, text_px, thinned
from .budget import frontier_plot

__all__ = ["kept_map", "press_frontier_plot", "KEPT_COLOURS"]

KEPT_COLOURS = [[0.0, "#f2f2f2"], [1.0, "#0072B2"]]
"""Dropped = pale grey, kept = the app's blue (darker = kept): reads on white and on a dark page."""
KEPT_MAP_BAR = "kept"
MAX_X_TICKS = 40


def kept_map(kept, labels: Sequence[str], head_wise: bool = False, subtitle: str | None = None,
             title: str = "Which context positions were kept", height: int | None = None) -> go.Figure:
    """A map of kept context positions: darker = kept.

    ``kept`` bool ``(layers, kv_heads, C)``; ``labels`` the ``C`` context tokens (hover shows each).  With
    ``head_wise`` (a press whose KV heads keep different numbers, ``adakv``) one row per layer and KV head, each
    cell kept or not; otherwise one row per layer, each cell the share of the layer's KV heads that keep the
    position (a press like SnapKV chooses per head, with the same count in each).  ``subtitle`` (e.g. the
    press's label) opens the short lines under the title: plotly never wraps a title, and a phone is 390 px wide.
    """
    mask = np.asarray(kept, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"kept must be (layers, kv_heads, C), got shape {mask.shape}")
    layers, heads, c = mask.shape
    if len(labels) != c:
        raise ValueError(f"got {len(labels)} labels for a context of {c} tokens")
    if head_wise:
        z = mask.reshape(layers * heads, c).astype(np.float32)
        rows = [f"L{layer + 1} h{h + 1}" for layer in range(layers) for h in range(heads)]
        counts = mask.sum(-1).reshape(-1)
        row_note = [f"keeps {int(n)} of {c}" for n in counts]
        cell = "%{customdata}"
        what = "rows: layer × KV head"
    else:
        z = mask.mean(1).astype(np.float32)
        rows = [f"layer {layer + 1}" for layer in range(layers)]
        row_note = [f"keeps {mask[layer].sum(-1).mean():.0f} of {c} per KV head" for layer in range(layers)]
        cell = "%{customdata}"
        what = "a cell: share of the layer's KV heads"
    names, ticks = axis_categories(labels)
    state = np.where(z >= 1, "kept", np.where(z <= 0, "dropped", ""))
    if not head_wise:
        shares = np.round(z * heads).astype(int)
        state = np.where((z > 0) & (z < 1), np.char.add(np.char.add(shares.astype(str), f" of {heads} KV heads"),
                                                            " keep it"), state)
        state = np.where(z >= 1, f"kept by all {heads} KV heads", np.where(z <= 0, "dropped by every KV head", state))
    custom = np.char.add(np.char.add(state.astype(str), " · the row "), np.array(row_note)[:, None])
    hover = f"%{{y}} · token %{{x}}<br><b>{cell}</b><extra></extra>"
    row_px = 7 if head_wise else 12
    height = height or int(min(900, max(260, 150 + row_px * len(rows))))
    angle = -60 if c > 12 else 0
    x_ticks = thinned(names, ticks, MAX_X_TICKS)[1]
    bottom = 70 + max((text_px(t, 10) for t in x_ticks), default=0.0) * (0.87 if angle else 0.0)
    left = 20 + max(text_px(r, 10) for r in rows)
    y_step = max(1, int(np.ceil(len(rows) / max(8, (height - 150) // 11))))
    heatmap = go.Heatmap(
        z=f32(z), x=names, y=rows, customdata=custom, colorscale=KEPT_COLOURS, zmin=0, zmax=1,
        xgap=0, ygap=1 if len(rows) <= 40 else 0, hovertemplate=hover, hoverongaps=False, name="kept",
        colorbar=colorbar(KEPT_MAP_BAR, tickvals=[0, 1], ticktext=["dropped", "kept"]),
    )
    layout = layout_dict(
        title, height,
        "\n".join([*([subtitle] if subtitle else []), f"{c} context tokens · darker = kept", what]),
        margin=dict(l=int(left) + 30, b=int(bottom), r=int(colorbar_px(KEPT_MAP_BAR, ["dropped"])) + 10),
        xaxis=category_axis(names, ticks, "context token (hover for its text)", MAX_X_TICKS, tickangle=angle,
                            tickfont=dict(size=10), side="bottom"),
        yaxis=dict(type="category", categoryorder="array", categoryarray=rows, autorange="reversed",
                   tickmode="array", tickvals=rows[::y_step], ticktext=rows[::y_step], tickfont=dict(size=10),
                   showgrid=False, zeroline=False, automargin=True),
        plot_bgcolor="white",
    )
    return go.Figure(heatmap, layout=layout)


def press_frontier_plot(points: Sequence[Mapping], policies: Sequence[str] = (),
                        x_title: str = "KV cache at the end, bytes (counted)",
                        y_title: str = "KL divergence to full, nats (measured; lower is better)",
                        height: int = 520) -> go.Figure:
    """Quality against KV cache for presses and our evicting ``policies`` (dotted, named ``"<name> (ours)"``),
    efficient points ringed: :func:`attnviz.figures.frontier_plot` with the press page's axes.

    ``points``: dicts with ``x``, ``y``, ``policy`` (the press or policy name), ``label`` and ``efficient``.
    """
    ours = set(policies)
    pts = [{**p, "policy": f"{p['policy']} (ours)" if p["policy"] in ours else p["policy"]} for p in points]
    return frontier_plot(pts, x_title, y_title, title="Which presses are worth it", height=height,
                         dotted={f"{p} (ours)" for p in ours}, x_fmt=".3s", y_fmt=".3g")
