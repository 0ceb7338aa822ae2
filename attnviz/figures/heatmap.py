"""Query × key heatmaps: attention weights, budget − full differences, and keep masks.

Rows are queries (the token doing the attending, first token at the top), columns are
keys (the token attended to). Axes are category axes whose coordinates are unique
names carrying the token position (``‘cat’ (#5)``), so a word that appears twice keeps
two rows; the ticks show the short label. Matrices wider than ``max_side`` are pooled
(see :func:`attnviz.figures.pooling.pool_matrix`) and the title says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ._common import (
    DEFAULT_HEIGHT,
    DIVERGING_SCALE,
    WEIGHT_SCALE,
    as_2d,
    axis_categories,
    category_axis,
    check_labels,
    colorbar,
    colorbar_px,
    f32,
    layout_dict,
    pooling_note,
    text_px,
    thinned,
    tick_font_size,
)
from .pooling import pool_matrix

MAX_TICKS_X = 48  # at most this many tick labels per axis; more tokens → every k-th label
PLOT_MARGIN_PX = 200  # figure height not available to rows (title, key labels, axis title)
WEIGHT_BAR, DIFF_BAR, KEPT_BAR = "share of<br>attention", "change in<br>attention", "share of<br>pairs kept"
AXIS_TITLE_PX = 56  # beyond the tick labels: their gap to the plot, the axis title and its gap (measured)


def _axes(shape, q_labels, k_labels, factor: int):
    q = check_labels(q_labels, shape[0], "q_labels")
    k = check_labels(k_labels, shape[1], "k_labels")
    qn, qt = axis_categories(q, factor)
    kn, kt = axis_categories(k, factor)
    return qn, qt, kn, kt


def _layout(title, height, factor, qn, qt, kn, kt, what="averages", note=None, max_x_ticks=MAX_TICKS_X,
            right_px: float = 30) -> dict:
    """The layout of every query × key heatmap (a dict for ``go.Figure(..., layout=...)``).

    ``right_px``: the right margin (a colour bar's width, :func:`colorbar_px`).
    """
    note = note or pooling_note(factor, what)
    height = height or DEFAULT_HEIGHT
    # Every row label if a 9-px font fits (a text is read row by row); else every k-th.
    per_row = (height - PLOT_MARGIN_PX) / max(1, len(qn))
    y_font = int(min(12, max(9, per_row - 1)))
    max_y = max(8, int((height - PLOT_MARGIN_PX) // y_font))  # rows at least a font high: labels touch, never overlap
    x_font = tick_font_size(min(len(kn), max_x_ticks))
    angle = -60 if len(kn) > 12 else 0
    return layout_dict(
        title,
        height,
        note,
        margin=_margins(thinned(qn, qt, max_y)[1], y_font, thinned(kn, kt, max_x_ticks)[1], x_font, angle, right_px),
        xaxis=category_axis(
            kn,
            kt,
            "key: the token attended to" + (f" (position; a cell = {factor} tokens)" if factor > 1 else ""),
            max_x_ticks,
            tickangle=angle,
            tickfont=dict(size=x_font),
            side="bottom",
        ),
        yaxis=category_axis(
            qn,
            qt,
            "query: the token attending" + (f" (position; a cell = {factor} tokens)" if factor > 1 else ""),
            max_y,
            autorange="reversed",
            tickfont=dict(size=y_font),
        ),
        plot_bgcolor="white",
    )


def _margins(y_ticks: list[str], y_font: int, x_ticks: list[str], x_font: int, angle: float,
             right_px: float) -> dict:
    """Left, bottom and right margins (px) that hold the tick labels, axis titles and colour bar.

    The axes keep ``automargin`` (a label wider than estimated still fits), but plotly
    draws a figure twice when its labels push the margins out, and the pages redraw
    heatmaps on every slider move.  Margins big enough from the start (estimated from
    above, :func:`text_px`) save that second drawing.
    """
    y_px = max((text_px(t, y_font) for t in y_ticks), default=0.0)
    x_px = max((text_px(t, x_font) for t in x_ticks), default=0.0)
    a = math.radians(abs(angle))
    x_height = x_px * math.sin(a) + x_font * 1.2 * math.cos(a)
    return dict(l=math.ceil(y_px + AXIS_TITLE_PX), b=math.ceil(x_height + AXIS_TITLE_PX), r=math.ceil(right_px))


def attention_heatmap(
    weights,
    q_labels: Sequence[str] | None = None,
    k_labels: Sequence[str] | None = None,
    title: str = "Attention weights",
    max_side: int = 256,
    zmax: float | None = None,
    height: int | None = None,
    max_x_ticks: int = MAX_TICKS_X,
) -> go.Figure:
    """Heatmap of an attention matrix ``weights`` (queries × keys, rows summing to 1).

    Bigger than ``max_side`` per axis: pooled in ``"share"`` mode (queries averaged, keys'
    shares added) so a cell still reads "share of the query's attention" and rows sum to 1.
    ``zmax`` caps the colour scale (default: the largest value), useful when one "sink"
    token takes most of the attention and everything else looks white.  ``max_x_ticks``:
    at most this many key labels (lower it for a figure in a narrow column, or they overlap).
    """
    w = as_2d(weights, "weights")
    pooled, factor = pool_matrix(w, max_side, mode="share")
    qn, qt, kn, kt = _axes(w.shape, q_labels, k_labels, factor)
    finite = pooled[np.isfinite(pooled)]
    top = float(zmax) if zmax is not None else (float(finite.max()) if finite.size else 1.0)
    if factor == 1:
        hover = "query %{y} → key %{x}: %{z:.3f} of its attention<extra></extra>"
    else:
        hover = (
            "queries %{y}<br>→ keys %{x}<br>"
            f"%{{z:.3f}} of their attention (average over the {factor} queries)<extra></extra>"
        )
    note = pooling_note(factor, "pools")
    if note:
        note += "\n(queries averaged, keys added: rows still sum to 1)"  # a line of its own: half-width charts
    return go.Figure(
        go.Heatmap(
            z=f32(pooled),
            x=kn,
            y=qn,
            colorscale=WEIGHT_SCALE,
            zmin=0.0,
            zmax=max(top, 1e-9),
            hovertemplate=hover,
            hoverongaps=False,
            colorbar=colorbar(WEIGHT_BAR),
            name="attention",
        ),
        layout=_layout(title, height, factor, qn, qt, kn, kt, note=note, max_x_ticks=max_x_ticks,
                       right_px=colorbar_px(WEIGHT_BAR, ["0.25"])),
    )


def difference_heatmap(
    full,
    budget,
    q_labels: Sequence[str] | None = None,
    k_labels: Sequence[str] | None = None,
    title: str = "What the budget changed: budget − full attention",
    max_side: int = 256,
    zmax: float | None = None,
    height: int | None = None,
) -> go.Figure:
    """Diverging heatmap of ``budget − full`` (red = attention lost, blue = gained, white = unchanged).

    The colour range is symmetric around 0 (``±zmax``, default the largest absolute change),
    and hovering a cell shows the full value, the budget value and the change.
    """
    f = as_2d(full, "full")
    b = as_2d(budget, "budget")
    if f.shape != b.shape:
        raise ValueError(f"full {f.shape} and budget {b.shape} must have the same shape")
    pf, factor = pool_matrix(f, max_side, mode="share")
    pb, _ = pool_matrix(b, max_side, mode="share")
    diff = pb - pf
    qn, qt, kn, kt = _axes(f.shape, q_labels, k_labels, factor)
    finite = np.abs(diff[np.isfinite(diff)])
    lim = float(zmax) if zmax is not None else (float(finite.max()) if finite.size else 0.0)
    lim = max(lim, 1e-6)
    who = "query %{y} → key %{x}" if factor == 1 else "queries %{y}<br>→ keys %{x}"
    hover = (
        f"{who}<br>full model: %{{customdata[0]:.3f}}<br>with budget: %{{customdata[1]:.3f}}"
        "<br>change: %{z:+.3f}<extra></extra>"
    )
    ticks = [f"−{lim:.2g} lost", "0", f"+{lim:.2g} gained"]
    return go.Figure(
        go.Heatmap(
            z=f32(diff),
            x=kn,
            y=qn,
            customdata=f32(np.stack([pf, pb], axis=-1)),
            colorscale=DIVERGING_SCALE,
            zmin=-lim,
            zmax=lim,
            zmid=0.0,
            hovertemplate=hover,
            hoverongaps=False,
            colorbar=colorbar(DIFF_BAR, tickvals=[-lim, 0, lim], ticktext=ticks),
            name="budget − full",
        ),
        layout=_layout(title, height, factor, qn, qt, kn, kt, note=pooling_note(factor, "pools"),
                       right_px=colorbar_px(DIFF_BAR, ticks)),
    )


def keep_mask_heatmap(
    keep,
    q_labels: Sequence[str] | None = None,
    k_labels: Sequence[str] | None = None,
    title: str = "Which query–key pairs the budget keeps",
    max_side: int = 256,
    causal: bool = False,
    height: int | None = None,
) -> go.Figure:
    """Show a keep mask (queries × keys, True = pair kept). ``causal=True`` blanks keys after the query.

    At full resolution kept pairs are dark blue and dropped ones light grey (two traces, so
    the hover says "kept" / "dropped" in words); pooled, each cell shows the share of its
    pairs that are kept.
    """
    k_arr = as_2d(keep, "keep").astype(np.float64)
    if causal:
        rows, cols = k_arr.shape
        future = np.arange(cols)[None, :] > (np.arange(rows)[:, None] + (cols - rows))
        k_arr[future] = np.nan
    pooled, factor = pool_matrix(k_arr, max_side, mode="mean")
    qn, qt, kn, kt = _axes(k_arr.shape, q_labels, k_labels, factor)
    layout = _layout(title, height, factor, qn, qt, kn, kt, what="averages",
                     right_px=30 if factor == 1 else colorbar_px(KEPT_BAR, ["100%"]))
    if factor == 1:
        kept = np.where(pooled > 0.5, 1.0, np.nan)
        dropped = np.where(pooled <= 0.5, 0.0, np.nan)
        traces = [
            go.Heatmap(
                z=f32(kept),
                x=kn,
                y=qn,
                colorscale=[[0, "#0072B2"], [1, "#0072B2"]],
                zmin=0,
                zmax=1,
                showscale=False,
                hoverongaps=False,
                hovertemplate="query %{y} → key %{x}: <b>kept</b><extra></extra>",
                name="kept",
            ),
            go.Heatmap(
                z=f32(dropped),
                x=kn,
                y=qn,
                colorscale=[[0, "#e3e3e3"], [1, "#e3e3e3"]],
                zmin=0,
                zmax=1,
                showscale=False,
                hoverongaps=False,
                hovertemplate="query %{y} → key %{x}: dropped<extra></extra>",
                name="dropped",
            ),
        ]
        fig = go.Figure(traces, layout=layout)
        # a legend-like note instead of a colour bar
        fig.add_annotation(
            text="<span style='color:#0072B2'>■</span> kept   <span style='color:#b0b0b0'>■</span> dropped"
            + ("   □ future token (not visible)" if causal else ""),
            xref="paper",
            yref="paper",
            x=1.0,
            y=1.0,
            yanchor="bottom",
            xanchor="right",
            showarrow=False,
            font=dict(size=13),
        )
    else:
        fig = go.Figure(
            go.Heatmap(
                z=f32(pooled),
                x=kn,
                y=qn,
                colorscale=WEIGHT_SCALE,
                zmin=0,
                zmax=1,
                hoverongaps=False,
                hovertemplate="queries %{y}<br>→ keys %{x}<br>%{z:.0%} of these pairs kept<extra></extra>",
                colorbar=colorbar(KEPT_BAR, tickformat=".0%"),
                name="kept share",
            ),
            layout=layout,
        )
    return fig


def capped_colour_top(m: np.ndarray, max_side: int) -> tuple[float | None, float | None]:
    """A colour-scale top that ignores the first key, and the first key's true top: ``(top, real)``, or
    ``(None, None)`` when capping would change little (or ``m`` ``(q, k)`` has under 3 keys).

    Most heads park much of their attention on the first token (an attention sink); on a scale set by
    it every other weight looks white.  Both numbers are of ``m`` pooled to ``max_side`` as drawn.
    """
    if m.shape[1] < 3:
        return None, None
    pooled, _ = pool_matrix(m, max_side, mode="share")
    rest = pooled[:, 1:]
    rest = rest[np.isfinite(rest)]
    top, real = float(rest.max()) if rest.size else 0.0, float(np.nanmax(pooled))
    if top <= 0 or top >= real * 0.98:
        return None, None
    return top, real


def shared_zmax(*matrices, max_side: int = 256) -> float:
    """One colour-scale top for heatmaps drawn side by side: the largest value of any of ``matrices``
    (each ``(q, k)`` attention weights) as :func:`attention_heatmap` draws it (pooled to ``max_side``).

    Pass it as ``zmax`` to each, so the same colour means the same weight in all of them.
    """
    tops = [0.0]
    for m in matrices:
        pooled, _ = pool_matrix(as_2d(m, "weights"), max_side, mode="share")
        finite = pooled[np.isfinite(pooled)]
        if finite.size:
            tops.append(float(finite.max()))
    return max(tops)
