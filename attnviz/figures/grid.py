"""Small multiples of attention heads, and per-head statistics.

:func:`head_grid` draws every head (of one layer, or of all layers) as a thumbnail in
ONE heatmap trace: tiles are laid side by side with a blank gap between them. One trace
renders much faster than hundreds of subplots (30 layers × 9 heads = 270 tiles). The
axes are category axes whose names say layer/head and row/column, so the hover reads
e.g. "layer 12 · key 5 / head 3 · query 7 / 0.210 of its attention".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ._common import (
    GAP_GREY,
    STAT_SCALE,
    THUMB_SCALE,
    base_layout,
    check_labels,
    colorbar,
    colorbar_px,
    f32,
    plotly_text,
    pooling_note,
    truncate,
    visible,
)
from .pooling import pool_matrix

PLOT_WIDTH = 1100  # px a wide Streamlit page gives a chart, roughly
GRID_MAX_HEIGHT = 760  # px of tiles, at most, before the figure grows past one screen
CELL_BUDGET = 200_000  # data cells in the whole tiled image (≈ 1 MB of JSON): thumbnails are pooled to fit


def _tile_axis(n_tiles: int, side: int, gap: int, tile_names: list[str], cell_word: str, factor: int):
    """Category names for one axis of the tiled image, tick positions (tile centres) and tick texts."""
    plural = {"query": "queries", "key": "keys"}
    names: list[str] = []
    centres: list[str] = []
    for t in range(n_tiles):
        if t:
            names += [f"gap {t}.{g}" for g in range(gap)]
        tile = []
        for i in range(side):
            if factor == 1:
                cell = f"{cell_word} {i}"
            else:
                cell = f"{plural[cell_word]} {i * factor}–{(i + 1) * factor - 1}"
            tile.append(f"{tile_names[t]} · {cell}")
        names += tile
        centres.append(tile[side // 2])
    return names, centres


def _short_names(labels: list[str], width: int = 10) -> list[str]:
    return [plotly_text(truncate(visible(x), width)) for x in labels]


def head_grid(
    thumbs,
    layer_labels: Sequence[str] | None = None,
    head_labels: Sequence[str] | None = None,
    title: str = "Every attention head at a glance",
    zmax: float | None = None,
    max_thumb: int = 48,
    layers_as: str = "auto",
    height: int | None = None,
) -> go.Figure:
    """Thumbnails of every head: ``thumbs`` is ``(layers, heads, s, s)`` or, for one layer, ``(heads, s, s)``.

    * ``layers_as``: ``"columns"`` (layers left→right, heads top→bottom), ``"rows"``, or ``"auto"``
      (whichever gives bigger tiles on a wide page; 30 layers × 9 heads → layers as columns).
      One layer: the heads sit in one row.
    * Thumbnails bigger than ``max_thumb`` are pooled (queries averaged, keys added).
    * ``zmax`` caps the colour scale; default: the 99th percentile of all values, so that
      one attention-sink column does not leave every other cell white. Hover shows true values.
    * Darker = more attention (the colour bar says so); the gaps between tiles are grey.
    """
    a = np.asarray(thumbs, dtype=np.float64)
    single = a.ndim == 3
    if single:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"thumbs must be (layers, heads, s, s) or (heads, s, s), got shape {np.shape(thumbs)}")
    n_layers, n_heads = a.shape[:2]
    layers = check_labels(layer_labels, n_layers, "layer_labels") if not single else [""]
    if single and layer_labels is not None and len(layer_labels) == 1:
        layers = [str(layer_labels[0])]
    heads = check_labels(head_labels, n_heads, "head_labels")

    # pool every thumbnail by the same factor; keep the whole image under CELL_BUDGET cells
    side_cap = max(4, min(max_thumb, math.isqrt(CELL_BUDGET // (n_layers * n_heads))))
    factor = max(1, math.ceil(max(a.shape[2:]) / side_cap))
    if factor > 1:
        a = np.stack(
            [
                np.stack([pool_matrix(a[li, hi], side_cap, mode="share")[0] for hi in range(n_heads)])
                for li in range(n_layers)
            ]
        )
    sr, sc = a.shape[2:]

    if single:
        as_cols = False  # heads along x, the single "layer" along y
    elif layers_as in ("columns", "rows"):
        as_cols = layers_as == "columns"
    elif layers_as == "auto":
        tile_cols = min(PLOT_WIDTH / n_layers, GRID_MAX_HEIGHT / n_heads)
        tile_rows = min(PLOT_WIDTH / n_heads, GRID_MAX_HEIGHT / n_layers)
        as_cols = tile_cols > tile_rows
    else:
        raise ValueError("layers_as must be 'auto', 'columns' or 'rows'")

    # tiles[r][c] -> (layer, head)
    if as_cols:
        n_r, n_c = n_heads, n_layers
        row_ticks, col_ticks = _short_names(heads), _short_names(layers)
        row_names = [f"head {h}" for h in row_ticks]
        col_names = [f"layer {lab}" for lab in col_ticks]
        grid = a.transpose(1, 0, 2, 3)  # (heads, layers, s, s)
        x_title, y_title = "layer", "head"
    elif single:
        n_r, n_c = 1, n_heads
        row_names = [f"layer {_short_names(layers)[0]}" if layers[0] else "this layer"]
        row_ticks, col_ticks = [_short_names(layers)[0]], _short_names(heads)
        col_names = [f"head {h}" for h in col_ticks]
        grid = a  # (1, heads, s, s)
        x_title, y_title = "head", "layer" if layers[0] else ""
    else:
        n_r, n_c = n_layers, n_heads
        row_ticks, col_ticks = _short_names(layers), _short_names(heads)
        row_names = [f"layer {lab}" for lab in row_ticks]
        col_names = [f"head {h}" for h in col_ticks]
        grid = a
        x_title, y_title = "head", "layer"

    gap = max(1, round(max(sr, sc) / 8))
    big = np.full((n_r * (sr + gap) - gap, n_c * (sc + gap) - gap), np.nan)
    for r in range(n_r):
        for c in range(n_c):
            big[r * (sr + gap) : r * (sr + gap) + sr, c * (sc + gap) : c * (sc + gap) + sc] = grid[r, c]

    y_names, y_centres = _tile_axis(n_r, sr, gap, row_names, "query", factor)
    x_names, x_centres = _tile_axis(n_c, sc, gap, col_names, "key", factor)

    finite = big[np.isfinite(big)]
    if zmax is None:
        top = float(np.quantile(finite, 0.99)) if finite.size else 1.0
        capped = finite.size and top < float(finite.max())
    else:
        top, capped = float(zmax), bool(finite.size and float(zmax) < float(finite.max()))
    top = max(top, 1e-9)

    tile_px = max(12.0, min(PLOT_WIDTH / n_c, GRID_MAX_HEIGHT / n_r, 220.0))
    fig_h = height or int(min(max(n_r * tile_px + 170, 360), 1400))

    bar_title = "attention<br>darker = more" + (f"<br>(colour capped<br>at {top:.2g})" if capped else "")
    fig = go.Figure(
        go.Heatmap(
            z=f32(big),
            x=x_names,
            y=y_names,
            colorscale=THUMB_SCALE,
            zmin=0.0,
            zmax=top,
            hoverongaps=False,
            hovertemplate="%{x}<br>%{y}<br>%{z:.3f} of its attention<extra></extra>",
            colorbar=colorbar(bar_title),
            name="heads",
        )
    )
    # the margin holds the colour bar up front, clear of plotly's toolbar (it covered the caption at 1024 px)
    base_layout(fig, title, fig_h, pooling_note(factor, "pools", "thumbnails shown"),
                margin=dict(r=colorbar_px(bar_title, [f"{top:.2g}", "0.25"])))
    n_ticks = max(n_r, n_c)
    tick_size = 12 if n_ticks <= 16 else 10
    fig.update_layout(
        plot_bgcolor=GAP_GREY,  # the NaN gaps show the background
        xaxis=dict(
            type="category",
            categoryorder="array",
            categoryarray=x_names,
            tickmode="array",
            tickvals=x_centres,
            ticktext=col_ticks,
            title=dict(text=x_title),
            showgrid=False,
            zeroline=False,
            tickfont=dict(size=tick_size),
            side="top",
            ticks="",
        ),
        yaxis=dict(
            type="category",
            categoryorder="array",
            categoryarray=y_names,
            tickmode="array",
            tickvals=y_centres,
            ticktext=row_ticks,
            title=dict(text=y_title),
            autorange="reversed",
            showgrid=False,
            zeroline=False,
            tickfont=dict(size=tick_size),
            scaleanchor="x",
            scaleratio=1,
            constrain="domain",
            ticks="",
        ),
    )
    fig.update_xaxes(constrain="domain")
    return fig


def head_stat_heatmap(
    values,
    stat_name: str,
    layer_labels: Sequence[str] | None = None,
    head_labels: Sequence[str] | None = None,
    title: str | None = None,
    fmt: str = ".2f",
    colorscale: str = STAT_SCALE,
    height: int | None = None,
) -> go.Figure:
    """A ``(layers, heads)`` table of one statistic (entropy, sink share, …): layers down, heads across.

    Numbers are written in the cells when the table is small enough to read them (≤ 400 cells).
    Darker = a larger value, whatever the statistic (for entropy: more spread out); the colour bar says so.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2:
        raise ValueError(f"values must be (layers, heads), got shape {v.shape}")
    n_layers, n_heads = v.shape
    layers = check_labels(layer_labels, n_layers, "layer_labels")
    heads = check_labels(head_labels, n_heads, "head_labels")
    stat = plotly_text(stat_name)
    lay_txt = _short_names(layers, 12)
    head_txt = _short_names(heads, 12)
    # per-cell hover words: a (layers × heads) table is small, so plain text arrays are fine
    hover_text = np.array(
        [[f"layer {lay_txt[i]}, head {head_txt[j]}" for j in range(n_heads)] for i in range(n_layers)]
    )
    show_numbers = v.size <= 400
    bar_title = f"{stat}<br>darker = larger"
    finite = v[np.isfinite(v)]
    ticks = [format(x, ".3g") for x in (finite.min(), finite.max())] if finite.size else []
    row_px = max(16, min(40, 640 // max(n_layers, 1)))
    fig = go.Figure(
        go.Heatmap(
            z=f32(v),
            x=np.arange(n_heads),
            y=np.arange(n_layers),
            text=hover_text,
            colorscale=colorscale,
            texttemplate=f"%{{z:{fmt}}}" if show_numbers else None,
            textfont=dict(size=11 if n_heads <= 16 else 9),
            hovertemplate=f"%{{text}}: {stat} %{{z:{fmt}}}<extra></extra>",
            hoverongaps=False,
            colorbar=colorbar(bar_title),
            xgap=1,
            ygap=1,
            name=stat,
        )
    )
    default_title = plotly_text(f"{stat_name[:1].upper()}{stat_name[1:]} of every head")
    base_layout(fig, title or default_title, height or min(n_layers * row_px + 160, 1300))
    fig.update_layout(
        plot_bgcolor="white",
        margin=dict(t=110, r=colorbar_px(bar_title, ticks)),  # clear of plotly's toolbar, as in head_grid
        xaxis=dict(
            tickmode="array",
            tickvals=list(range(n_heads)),
            ticktext=head_txt,
            title=dict(text="head"),
            side="top",
            showgrid=False,
            zeroline=False,
        ),
        yaxis=dict(
            tickmode="array",
            tickvals=list(range(n_layers)),
            ticktext=lay_txt,
            title=dict(text="layer"),
            autorange="reversed",
            showgrid=False,
            zeroline=False,
        ),
    )
    return fig


def grid_tiles(thumbs: np.ndarray, n_tokens: int, max_side: int = 48) -> np.ndarray:
    """Tiles ``(layers, heads, s, s)`` for :func:`head_grid` from block-mean thumbnails of the same shape
    (:class:`attnviz.inspection.observe.LayerSummary`), as shares of attention, pooled further so the
    whole grid fits :data:`CELL_BUDGET` (then :func:`head_grid` does not pool them again).

    A thumbnail cell is a block *mean*; times the keys per block it reads as ``head_grid``'s hover says:
    the share of attention a block of queries gives a block of keys (exact when the block size divides n).
    """
    layers, heads = thumbs.shape[:2]
    t = thumbs * (n_tokens / thumbs.shape[-1])
    side = max(4, min(max_side, math.isqrt(CELL_BUDGET // (layers * heads))))
    if max(t.shape[-2:]) > side:
        t = np.stack([np.stack([pool_matrix(tile, side, mode="share")[0] for tile in lyr]) for lyr in t])
    return t
