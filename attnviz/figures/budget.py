"""Budget figures: quality-vs-compute frontiers, attention share vs context length, metric bars."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ._common import MUTED, OKABE_ITO, base_layout, layout_dict, plotly_text

POLICY_SYMBOLS = ["circle", "square", "triangle-up", "diamond", "triangle-down", "pentagon", "hexagon", "star-square"]
FRONTIER_COLOUR = "#808080"  # mid grey: the frontier must show on a white and on a dark page


def _txt(v) -> str:
    return plotly_text(str(v))


def frontier_plot(
    points: Sequence[Mapping],
    x_title: str,
    y_title: str,
    log_x: bool = False,
    title: str = "Which budgets are worth it",
    height: int = 580,
    x_fmt: str = ".3g",
    y_fmt: str = ".3g",
    oracles: Collection[str] = (),
) -> go.Figure:
    """One line with markers per policy; efficient (Pareto) points ringed and joined by a dashed frontier line.

    ``oracles``: policies that score every pair before choosing (topk, topp): drawn dotted and named
    ``"<policy> (oracle)"``, so a ring on them is not read as a policy one can deploy as cheaply as the rest.

    ``points``: dicts with ``x``, ``y``, ``policy``, ``label`` (e.g. "keep 25%") and ``efficient``
    (bool, decided by the caller). Each policy gets its own colour *and* marker shape
    (readable without colour). The ring trace is named ``"efficient (Pareto) point"`` and the
    dashed line ``"efficient frontier"``; both hold exactly the points flagged ``efficient``.
    """
    pts = [dict(p) for p in points]
    for p in pts:
        for key in ("x", "y", "policy"):
            if key not in p:
                raise ValueError(f"every point needs x, y and policy; missing {key!r} in {p}")
    policies: list[str] = []
    for p in pts:
        if p["policy"] not in policies:
            policies.append(p["policy"])

    traces = []  # one go.Figure(traces, layout) at the end: add_trace re-validates every trace each time
    hover = (
        "<b>%{customdata[0]}</b> · %{customdata[1]}<br>"
        f"{_txt(x_title)}: %{{x:{x_fmt}}}<br>{_txt(y_title)}: %{{y:{y_fmt}}}"
        "<br>%{customdata[2]}<extra></extra>"
    )
    for idx, pol in enumerate(policies):
        mine = sorted((p for p in pts if p["policy"] == pol), key=lambda p: float(p["x"]))
        traces.append(
            go.Scatter(
                x=np.array([float(p["x"]) for p in mine]),
                y=np.array([float(p["y"]) for p in mine]),
                mode="lines+markers",
                name=_txt(f"{pol} (oracle)" if pol in oracles else pol),
                line=dict(color=OKABE_ITO[idx % len(OKABE_ITO)], width=2, dash="dot" if pol in oracles else "solid"),
                marker=dict(
                    symbol=POLICY_SYMBOLS[idx % len(POLICY_SYMBOLS)],
                    size=9,
                    color=OKABE_ITO[idx % len(OKABE_ITO)],
                    line=dict(width=1, color="white"),
                ),
                customdata=[
                    [
                        _txt(pol),
                        _txt(p.get("label", "")),
                        "on the efficient frontier" if p.get("efficient") else "not efficient: another point is better",
                    ]
                    for p in mine
                ],
                hovertemplate=hover,
            )
        )

    eff = sorted((p for p in pts if p.get("efficient")), key=lambda p: (float(p["x"]), float(p["y"])))
    if eff:
        ex = np.array([float(p["x"]) for p in eff])
        ey = np.array([float(p["y"]) for p in eff])
        traces.append(
            go.Scatter(
                x=ex,
                y=ey,
                mode="lines",
                name="efficient frontier",
                line=dict(color=FRONTIER_COLOUR, width=1.5, dash="dash"),
                hoverinfo="skip",
            )
        )
        traces.append(
            go.Scatter(
                x=ex,
                y=ey,
                mode="markers",
                name="efficient (Pareto) point",
                marker=dict(symbol="circle-open", size=19, color=FRONTIER_COLOUR, line=dict(width=2.2)),
                customdata=[[_txt(p["policy"]), _txt(p.get("label", "")), "on the efficient frontier"] for p in eff],
                hovertemplate=hover,
            )
        )
    n_eff = len(eff)
    note = (
        # two short lines: plotly never wraps a title, and one line was cut at a phone's width
        f"{n_eff} efficient point{'s' if n_eff != 1 else ''} (ringed, dashed line):"
        "\nno other point beats them on both axes"
        if n_eff
        else None
    )
    return go.Figure(traces, layout=layout_dict(
        title, height, note,
        xaxis=dict(title=dict(text=x_title), type="log" if log_x else "linear", zeroline=False),
        yaxis=dict(title=dict(text=y_title), zeroline=False),
        # Below the plot, in rows: on the right it took a third of a phone's width and covered points there.
        legend=FRONTIER_LEGEND,
        hovermode="closest",
    ))


FRONTIER_LEGEND = dict(orientation="h", x=0, xanchor="left", y=-0.16, yanchor="top", itemsizing="constant")
"""The frontier's legend: horizontal rows under the x axis title (plotly widens the bottom margin to fit them)."""


def attention_share_plot(
    curves: Mapping[str, tuple],
    marker_n: int | float | None = None,
    title: str = "Share of attention as the context grows",
    y_title: str = "share of attention",
    x_title: str = "context length (tokens, log scale)",
    marker_label: str = "this text",
    height: int = 520,
) -> go.Figure:
    """One line per curve: ``curves[name] = (n_tokens, share)`` with ``share`` a fraction in 0..1.

    Shares are drawn as percentages; the x axis (context length) is logarithmic. ``marker_n``
    adds a dashed vertical line, e.g. at the length of the text on screen.
    """
    traces = []
    y_top = 0.0
    all_x: list[float] = [] if marker_n is None else [float(marker_n)]
    for idx, (name, (n_tok, share)) in enumerate(curves.items()):
        x = np.asarray(n_tok, dtype=np.float64)
        y = np.asarray(share, dtype=np.float64) * 100.0
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(f"curve {name!r}: n_tokens and share must be 1-D arrays of the same length")
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        all_x += [float(v) for v in x if np.isfinite(v) and v > 0]
        if np.isfinite(y).any():
            y_top = max(y_top, float(np.nanmax(y)))
        colour = OKABE_ITO[idx % len(OKABE_ITO)]
        traces.append(
            go.Scatter(
                x=x,
                y=y,
                mode="lines+markers" if x.size <= 60 else "lines",
                name=_txt(name),
                line=dict(color=colour, width=2.5),
                marker=dict(symbol=POLICY_SYMBOLS[idx % len(POLICY_SYMBOLS)], size=7, color=colour),
                hovertemplate=f"{_txt(name)}: %{{y:.1f}}% of the attention with %{{x:,.0f}} tokens<extra></extra>",
            )
        )
    y_max = min(100.0, y_top * 1.08) if y_top > 0 else 100.0
    if marker_n is not None:
        traces.append(
            go.Scatter(
                x=[marker_n, marker_n],
                y=[0, y_max],
                mode="lines",
                line=dict(color=MUTED, dash="dot", width=1.5),
                name=f"{_txt(marker_label)} ({marker_n:,.0f} tokens)",
                hovertemplate=f"{_txt(marker_label)}: {marker_n:,.0f} tokens<extra></extra>",
            )
        )
    return go.Figure(traces, layout=layout_dict(
        title, height,
        xaxis=dict(title=dict(text=x_title), type="log", zeroline=False, **_log_ticks(all_x)),
        yaxis=dict(title=dict(text=y_title), ticksuffix="%", range=[0, y_max], zeroline=False),
        hovermode="closest",
        legend=dict(itemsizing="constant"),
    ))


def _log_ticks(xs: list[float]) -> dict:
    """Ticks at powers of two (64, 128, … 4k) when they fit, instead of plotly's cluttered 2-3-4-5 minor labels."""
    if not xs:
        return {}
    lo, hi = min(xs), max(xs)
    vals = [2.0**k for k in range(int(np.floor(np.log2(lo))), int(np.ceil(np.log2(hi))) + 1)]
    while len(vals) > 12:
        vals = vals[::2]
    text = [f"{v / 1024:g}k" if v >= 4096 else f"{v:,.0f}" if v >= 1 else f"{v:g}" for v in vals]
    return dict(tickmode="array", tickvals=vals, ticktext=text)


def metric_bar(
    values: Mapping[str, float],
    title: str,
    x_title: str,
    fmt: str = ".3g",
    reference: float | None = None,
    reference_label: str = "full model",
    highlight: str | None = None,
    height: int | None = None,
    y_title: str = "",
) -> go.Figure:
    """Horizontal bars, one per entry of ``values`` (name → number), in the order given.

    ``reference`` draws a dashed line (e.g. the full model's value); ``highlight`` names the
    bar to colour strongly (the others are pale).
    """
    names = list(values)
    vals = np.array([float(values[k]) for k in names], dtype=np.float64)
    colours = [OKABE_ITO[0] if (highlight is None or k == highlight) else "#9ecae1" for k in names]
    fig = go.Figure(
        go.Bar(
            x=vals,
            y=[_txt(k) for k in names],
            orientation="h",
            marker=dict(color=colours),
            texttemplate=f"%{{x:{fmt}}}",
            textposition="outside",
            cliponaxis=False,
            hovertemplate=f"%{{y}}: %{{x:{fmt}}}<extra></extra>",
            name=_txt(x_title),
        )
    )
    if reference is not None:
        fig.add_vline(
            x=float(reference),
            line=dict(color=MUTED, dash="dash", width=1.5),
            annotation_text=f"{_txt(reference_label)}: {format(float(reference), fmt)}",
            annotation_position="top",
        )
    base_layout(fig, title, height or max(260, 46 * len(names) + 150))
    fig.update_layout(
        xaxis=dict(title=dict(text=x_title), zeroline=True),
        yaxis=dict(title=dict(text=y_title), autorange="reversed", automargin=True),
        showlegend=False,
        bargap=0.3,
    )
    return fig
