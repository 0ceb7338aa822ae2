"""bertviz-style "head view": the text twice, queries on the left and keys on the right.

For each selected query token a straight line runs to every key it gives at least
``threshold`` of its attention; thicker and darker lines mean more attention. The text
runs top to bottom, so a causal model's lines always go up or straight across.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from ._common import MUTED, OKABE_ITO, as_2d, base_layout, check_labels, short_label

LINES_MAX = 100  # tokens on screen at most: labels stay readable; a longer text shows a window
MAX_HEIGHT = 1600  # px: beyond ~120 tokens rows get tight; the figure stops growing here
ROW_PX_MAX = 20
ROW_PX_MIN = 10


def _grey(level: float) -> str:
    """Text colour from light grey (0) to near black (1)."""
    v = int(round(190 - 170 * min(max(level, 0.0), 1.0)))
    return f"rgb({v},{v},{v})"


def token_lines(
    weights,
    labels: Sequence[str] | None = None,
    selected: Sequence[int] = (),
    threshold: float = 0.02,
    title: str = "Where the selected tokens look",
    k_labels: Sequence[str] | None = None,
    height: int | None = None,
    label_width: int = 16,
) -> go.Figure:
    """Lines from each ``selected`` query (left column) to the keys (right column) it attends to.

    ``weights`` is ``(queries, keys)``; ``labels`` names the queries (and the keys too unless
    ``k_labels`` is given). Only weights ``>= threshold`` get a line; line width and opacity
    grow with the weight (relative to the largest weight drawn). Each line trace carries
    ``meta = {"query": i, "key": j, "weight": w}``.
    """
    w = as_2d(weights, "weights").astype(np.float64)
    nq, nk = w.shape
    q_labels = check_labels(labels, nq, "labels")
    if k_labels is None:
        k_labels = q_labels if nk == nq else None
    k_lab = check_labels(k_labels, nk, "k_labels")
    sel = []
    for i in selected:
        i = int(i)
        if not -nq <= i < nq:
            raise IndexError(f"selected query {i} is outside 0..{nq - 1}")
        i %= nq
        if i not in sel:
            sel.append(i)

    n = max(nq, nk)
    row_px = max(ROW_PX_MIN, min(ROW_PX_MAX, (MAX_HEIGHT - 170) / max(n, 1)))
    fig_h = height or int(min(MAX_HEIGHT, max(360, n * row_px + 170)))
    font_px = int(max(8, min(14, row_px * 0.72)))

    qt = [short_label(x, label_width) for x in q_labels]
    kt = [short_label(x, label_width) for x in k_lab]
    colour_of = {qi: OKABE_ITO[idx % 6] for idx, qi in enumerate(sel)}  # skip yellow/black

    drawn = [(qi, j, float(w[qi, j])) for qi in sel for j in range(nk) if w[qi, j] >= threshold]
    w_max = max((x[2] for x in drawn), default=1.0)

    fig = go.Figure()
    # highlight bands behind the selected tokens, in both columns
    for qi in sel:
        for x0, x1, yy in ((-0.4, -0.01, qi), (1.01, 1.4, qi if qi < nk else None)):
            if yy is None:
                continue
            fig.add_shape(
                type="rect",
                x0=x0,
                x1=x1,
                y0=yy - 0.48,
                y1=yy + 0.48,
                fillcolor=colour_of[qi],
                opacity=0.16,
                line=dict(width=0),
                layer="below",
            )

    # one legend entry per selected query (even if none of its weights passes the threshold)
    for qi in sel:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                line=dict(color=colour_of[qi], width=4),
                name=f"from ‘{qt[qi]}’ (#{qi})",
                legendgroup=f"q{qi}",
                hoverinfo="skip",
            )
        )
    # the lines, weakest first so strong ones are drawn on top
    for qi, j, wt in sorted(drawn, key=lambda t: t[2]):
        rel = wt / w_max if w_max > 0 else 0.0
        fig.add_trace(
            go.Scatter(
                x=[0.0, 1.0],
                y=[qi, j],
                mode="lines",
                line=dict(color=colour_of[qi], width=0.6 + 7.4 * rel),
                opacity=0.18 + 0.72 * rel,
                hoverinfo="skip",
                showlegend=False,
                legendgroup=f"q{qi}",
                meta={"query": qi, "key": j, "weight": wt},
                name=f"#{qi}→#{j}",
            )
        )
    # hover targets at the middle of every line
    for qi in sel:
        mine = [(j, wt) for q2, j, wt in drawn if q2 == qi]
        if not mine:
            continue
        fig.add_trace(
            go.Scatter(
                x=[0.5] * len(mine),
                y=[(qi + j) / 2 for j, _ in mine],
                mode="markers",
                marker=dict(size=10, color=colour_of[qi], opacity=0.0),
                text=[f"query ‘{qt[qi]}’ (#{qi}) → key ‘{kt[j]}’ (#{j}): {wt:.3f} of its attention" for j, wt in mine],
                hovertemplate="%{text}<extra></extra>",
                showlegend=False,
                legendgroup=f"q{qi}",
                name=f"hover #{qi}",
            )
        )

    # the two columns of tokens
    received = w[sel].sum(axis=0) if sel else np.zeros(nk)
    recv_max = received.max() if received.size and received.max() > 0 else 1.0
    q_text = [f"<b>{t}</b>" if i in colour_of else t for i, t in enumerate(qt)]
    q_col = ["#000000" if i in colour_of else _grey(0.55) for i in range(nq)]
    q_hover = []
    for i in range(nq):
        row = w[i]
        top = np.argsort(-row, kind="stable")[:3]
        tops = ", ".join(f"‘{kt[j]}’ (#{j}) {row[j]:.2f}" for j in top if row[j] > 0)
        q_hover.append(f"query ‘{qt[i]}’ (#{i})" + (f"<br>looks most at {tops}" if tops else ""))
    fig.add_trace(
        go.Scatter(
            x=[0.0] * nq,
            y=list(range(nq)),
            mode="text",
            text=q_text,
            textposition="middle left",
            textfont=dict(size=font_px, color=q_col),
            hovertext=q_hover,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
            name="queries",
        )
    )
    k_text = [f"<b>{t}</b>" if received[j] >= threshold else t for j, t in enumerate(kt)]
    k_col = [_grey(0.45 + 0.55 * received[j] / recv_max) if received[j] >= threshold else _grey(0.0) for j in range(nk)]
    if sel:
        k_hover = [
            f"key ‘{kt[j]}’ (#{j})<br>gets " + ", ".join(f"{w[qi, j]:.3f} from ‘{qt[qi]}’ (#{qi})" for qi in sel)
            for j in range(nk)
        ]
    else:
        k_hover = [f"key ‘{kt[j]}’ (#{j})" for j in range(nk)]
    fig.add_trace(
        go.Scatter(
            x=[1.0] * nk,
            y=list(range(nk)),
            mode="text",
            text=k_text,
            textposition="middle right",
            textfont=dict(size=font_px, color=k_col),
            hovertext=k_hover,
            hovertemplate="%{hovertext}<extra></extra>",
            showlegend=False,
            name="keys",
        )
    )

    n_lines = len(drawn)
    note = (
        f"{n_lines} line{'s' if n_lines != 1 else ''}: one per key getting ≥ {threshold:g} of a selected query's"
        " attention; thicker and darker = more"
        if sel
        else "select a token to see where it looks"
    )
    base_layout(fig, title, fig_h, note)
    step = 1 if n <= 20 else 5 if n <= 80 else 10
    fig.update_layout(
        plot_bgcolor="white",
        xaxis=dict(
            range=[-0.42, 1.42],
            tickmode="array",
            tickvals=[0.0, 1.0],
            ticktext=["<b>query</b> (attending)", "<b>key</b> (attended to)"],
            side="top",
            showgrid=False,
            zeroline=False,
            fixedrange=True,
            title=dict(text="each line joins a query to a key it attends to", font=dict(size=12, color=MUTED)),
        ),
        yaxis=dict(
            range=[n - 0.5, -0.5],
            tickmode="array",
            tickvals=list(range(0, n, step)),
            ticktext=[f"#{i}" for i in range(0, n, step)],
            tickfont=dict(size=10, color="#888"),
            title=dict(text="position in the text (first token at the top)"),
            showgrid=False,
            zeroline=False,
        ),
        legend=dict(orientation="h", yanchor="top", y=-0.01, xanchor="center", x=0.5, title=dict(text="lines ")),
        margin=dict(t=150, b=70),
        hovermode="closest",
    )
    return fig


def lines_window(selected: list[int], n: int, causal: bool, most: int = LINES_MAX) -> tuple[int, int, list[int]]:
    """``(start, end, dropped)``: at most ``most`` consecutive tokens around the selected ones.

    A causal token only looks back, so the window ends at the last selected token; an encoder's
    window is centred on the selection.  Selected tokens that do not fit are ``dropped``.
    """
    if n <= most:
        return 0, n, []
    if not selected:
        return (n - most, n, []) if causal else (0, most, [])
    lo, hi = min(selected), max(selected)
    if causal:
        lo = max(lo, hi - most + 1)
    else:
        hi = min(hi, lo + most - 1)
    dropped = [i for i in selected if not lo <= i <= hi]
    if causal:
        start = max(0, hi + 1 - most)
    else:
        start = min(max(0, (lo + hi + 1) // 2 - most // 2), n - most)
    return start, start + most, dropped


_LOCAL_POS = re.compile(r"\(#(\d+)\)")
_TICK_POS = re.compile(r"^#(\d+)$")


def shift_positions(fig, offset: int, count: int):
    """token_lines numbers the ``count`` tokens it is given from 0: show their positions in the whole text."""
    if not offset:
        return fig

    def shift(pattern, s):
        return pattern.sub(lambda m: m[0].replace(m[1], str(int(m[1]) + offset)), s) if isinstance(s, str) else s

    for trace in fig.data:
        trace.name = shift(_LOCAL_POS, trace.name)
        for attr in ("text", "hovertext"):
            value = getattr(trace, attr, None)
            if isinstance(value, str):
                setattr(trace, attr, shift(_LOCAL_POS, value))
            elif value is not None:
                setattr(trace, attr, [shift(_LOCAL_POS, v) for v in value])
    ticks = fig.layout.yaxis.tickvals
    if ticks and len(ticks) > 1:  # keep the figure's spacing, at round positions of the whole text
        step = int(ticks[1] - ticks[0])
        local = [i for i in range(count) if (i + offset) % step == 0]
        fig.update_yaxes(tickvals=local, ticktext=[f"#{i + offset}" for i in local])
    return fig
