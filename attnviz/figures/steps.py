"""Small annotated matrices for the "inside one attention layer" page.

:func:`matrix_figure` draws Q, K, V, QKᵀ, the scaled and masked scores, the softmax
weights and the output as a heatmap with each number written in its cell. Masked cells
(``mask`` True, or a value of −inf) are grey and read "−∞".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ._common import (
    DIVERGING_SCALE,
    MASKED_GREY,
    WEIGHT_SCALE,
    as_2d,
    axis_categories,
    base_layout,
    category_axis,
    check_labels,
    f32,
    plotly_text,
)

MAX_ANNOTATED_CELLS = 600  # above this the numbers would be unreadable: colour only, numbers on hover


def _fmt(v: float, fmt: str) -> str:
    return format(v, fmt).replace("-", "−")  # typographic minus


def matrix_figure(
    m,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "",
    fmt: str = ".3f",
    colorscale: str | None = None,
    mask=None,
    x_title: str = "column",
    y_title: str = "row",
    height: int | None = None,
    mask_reason: str = "masked: set to −∞ before the softmax",
) -> go.Figure:
    """Annotated heatmap of a small matrix ``m`` (rows × columns) with every value written in its cell.

    * ``mask`` (bool, True = masked) and any ``-inf`` in ``m`` show as grey "−∞" cells.
    * ``colorscale`` default: a diverging scale symmetric around 0 when ``m`` has negative
      values (scores, Q, K, V, outputs), else a white→blue scale from 0 (softmax weights).
    * Row labels may repeat (the same word twice): rows are kept apart by position.
    """
    a = as_2d(m, "m").astype(np.float64)
    r, c = a.shape
    masked = np.isneginf(a)
    if mask is not None:
        mk = np.asarray(mask, dtype=bool)
        if mk.shape != a.shape:
            raise ValueError(f"mask shape {mk.shape} differs from matrix shape {a.shape}")
        masked |= mk
    rows = check_labels(row_labels, r, "row_labels")
    cols = check_labels(col_labels, c, "col_labels")
    rn, rt = axis_categories(rows)
    cn, ct = axis_categories(cols)

    shown = np.where(masked, np.nan, a)
    finite = shown[np.isfinite(shown)]
    diverging = colorscale is None and finite.size and float(finite.min()) < 0
    scale = colorscale or (DIVERGING_SCALE if diverging else WEIGHT_SCALE)
    if diverging or (colorscale is not None and finite.size and float(finite.min()) < 0):
        lim = float(np.abs(finite).max()) if finite.size else 1.0
        zr = dict(zmin=-max(lim, 1e-12), zmax=max(lim, 1e-12), zmid=0.0)
    else:
        top = float(finite.max()) if finite.size else 1.0
        zr = dict(zmin=min(0.0, float(finite.min()) if finite.size else 0.0), zmax=max(top, 1e-12))

    annotate = a.size <= MAX_ANNOTATED_CELLS
    text = np.array(
        [["" if masked[i, j] or not np.isfinite(a[i, j]) else _fmt(a[i, j], fmt) for j in range(c)] for i in range(r)]
    )
    font_px = 13 if c <= 8 else 11 if c <= 16 else 9
    who = f"{plotly_text(y_title)} %{{y}}, {plotly_text(x_title)} %{{x}}"

    fig = go.Figure()
    if masked.any():
        fig.add_trace(
            go.Heatmap(
                z=f32(np.where(masked, 1.0, np.nan)),
                x=cn,
                y=rn,
                colorscale=[[0, MASKED_GREY], [1, MASKED_GREY]],
                showscale=False,
                text=np.where(masked, "−∞", ""),
                texttemplate="%{text}" if annotate else None,
                textfont=dict(size=font_px, color="#333"),
                hoverongaps=False,
                hovertemplate=f"{who}: {plotly_text(mask_reason)}<extra></extra>",
                xgap=1,
                ygap=1,
                name="masked",
            )
        )
    fig.add_trace(
        go.Heatmap(
            z=f32(shown),
            x=cn,
            y=rn,
            colorscale=scale,
            **zr,
            text=text,
            texttemplate="%{text}" if annotate else None,
            textfont=dict(size=font_px),
            hoverongaps=False,
            hovertemplate=f"{who}: %{{text}}<extra></extra>",
            colorbar=dict(thickness=10, len=0.9),
            xgap=1,
            ygap=1,
            name="values",
        )
    )
    fig_h = height or int(min(760, max(260, 34 * r + 170)))
    base_layout(fig, title, fig_h)
    fig.update_layout(
        plot_bgcolor="white",
        margin=dict(t=110),
        xaxis=category_axis(cn, ct, x_title, 64, side="top", tickangle=0 if c <= 12 else -45),
        yaxis=category_axis(rn, rt, y_title, 64, autorange="reversed"),
    )
    return fig
