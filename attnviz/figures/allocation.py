"""Allocation figures: where one total budget went (layers × heads), the price's demand curve, each layer's
value curve with the water level, and a frontier with one curve per allocator (mean and range over texts)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ._common import MUTED, OKABE_ITO, WEIGHT_SCALE, colorbar, colorbar_px, f32, layout_dict, plotly_text
from .budget import frontier_plot

__all__ = ["allocation_map", "demand_curve", "value_curves", "allocator_frontier", "SHARE_BAR"]

SHARE_BAR = "share of<br>pairs kept"


def allocation_map(share, title: str, zmax: float | None = None, height: int = 460) -> go.Figure:
    """Heatmap of the share of allowed query–key pairs kept per layer (rows, layer 1 at the top) and query head
    (columns); darker = more kept (the project's colour rule), 0 white.

    ``share``: ``(layers, heads)`` array of fractions in [0, 1] (counted).  ``zmax``: the top of the colour scale,
    to give two maps the same scale (default: this map's largest share).
    """
    a = np.asarray(share, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"share must be (layers, heads), got shape {a.shape}")
    layers, heads = a.shape
    top = float(zmax) if zmax is not None else float(np.nanmax(a)) if a.size else 1.0
    top = max(top, 1e-9)
    ticks = [f"{100 * v:.0f}%" for v in np.linspace(0, top, 5)]
    x = [f"head {h + 1}" for h in range(heads)]
    y = [f"layer {layer + 1}" for layer in range(layers)]
    trace = go.Heatmap(
        z=f32(a), x=x, y=y, zmin=0.0, zmax=top, colorscale=WEIGHT_SCALE,
        colorbar=colorbar(SHARE_BAR, tickformat=".0%"),
        hovertemplate="%{y}, %{x}: keeps %{z:.1%} of its allowed pairs (counted)<extra></extra>",
    )
    return go.Figure(trace, layout=layout_dict(
        title, height, margin=dict(r=colorbar_px(SHARE_BAR, ticks)),
        xaxis=dict(title=dict(text="query head"), showgrid=False, zeroline=False, side="bottom"),
        yaxis=dict(title=dict(text="layer (input at the top)"), autorange="reversed", showgrid=False, zeroline=False,
                   tickmode="array", tickvals=y[:: max(1, layers // 10)]),
    ))


def demand_curve(prices, keys_per_query, total_keys: float, price_found: float | None = None,
                 price_set: float | None = None, floor_keys: int | None = None, height: int = 420) -> go.Figure:
    """The demand for attention: keys per query the full run would keep at each price (a curve falling to the
    right), the total budget as a horizontal line and the price that spends it (and the user's own) as
    vertical lines.

    ``prices`` ``(m,)`` attention probabilities, > 0 (log axis); ``keys_per_query`` ``(m,)`` mean kept keys per
    query row at each price (floor included); ``total_keys`` the budget in the same unit; ``floor_keys`` F, said
    in the legend.
    """
    p = np.asarray(prices, dtype=np.float64)
    k = np.asarray(keys_per_query, dtype=np.float64)
    if p.shape != k.shape or p.ndim != 1:
        raise ValueError("prices and keys_per_query must be 1-D arrays of the same length")
    if (p <= 0).any():
        raise ValueError("prices must be above 0 (the axis is logarithmic)")
    floor = f" (each query's best {floor_keys} first)" if floor_keys else ""
    traces = [go.Scatter(x=p, y=k, mode="lines", name=f"keys kept at each price{floor}",
                         line=dict(color=OKABE_ITO[0], width=2.5),
                         hovertemplate="price %{x:.3g}: %{y:.2f} keys per query<extra></extra>"),
              go.Scatter(x=[p.min(), p.max()], y=[total_keys, total_keys], mode="lines",
                         name=f"the total: {total_keys:.3g} keys per query", line=dict(color=MUTED, dash="dash"),
                         hoverinfo="skip")]
    top = float(max(np.nanmax(k) if k.size else 1.0, total_keys)) * 1.05
    for price, name, colour, dash in ((price_found, "the price that spends the total", OKABE_ITO[3], "dot"),
                                      (price_set, "your price", OKABE_ITO[2], "solid")):
        if price is not None and price > 0:
            traces.append(go.Scatter(x=[price, price], y=[0, top], mode="lines", name=f"{name}: {price:.3g}",
                                     line=dict(color=colour, dash=dash, width=2), hoverinfo="skip"))
    return go.Figure(traces, layout=layout_dict(
        "The demand for attention: keys kept at each price", height,
        xaxis=dict(title=dict(text="price τ: the least attention probability a key must have (log scale)"),
                   type="log", zeroline=False),
        yaxis=dict(title=dict(text="keys kept per query (mean)"), range=[0, top], zeroline=False),
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.22, yanchor="top"),
        hovermode="closest",
    ))


def value_curves(curve_keys, curve_kl, layer_keys: Sequence[float] | None = None,
                 water_level: float | None = None, height: int = 480) -> go.Figure:
    """Each layer's value curve: KL to full (nats, log) when only that layer is budgeted, against its keys
    per query (log); the keys each layer was given marked on its curve.

    ``curve_keys`` ``(m,)``; ``curve_kl`` ``(layers, m)``; ``layer_keys`` ``(layers,)`` the allocation;
    ``water_level`` the marginal fall in KL per key at which the allocation stopped (said in the title).
    Layers go from light (input) to dark (output), one sequential scale.
    """
    x = np.asarray(curve_keys, dtype=np.float64)
    y = np.asarray(curve_kl, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != x.size:
        raise ValueError(f"curve_kl must be (layers, {x.size}), got shape {y.shape}")
    layers = y.shape[0]
    floor = 1e-6  # KL 0 (a layer given every key) cannot sit on a log axis
    traces = []
    for layer in range(layers):
        shade = 0.3 + 0.7 * layer / max(1, layers - 1)
        colour = f"rgba(8, 48, 107, {shade:.2f})"
        traces.append(go.Scatter(x=x, y=np.maximum(y[layer], floor), mode="lines", line=dict(color=colour, width=1.5),
                                 name=f"layer {layer + 1}", showlegend=False,
                                 hovertemplate=f"layer {layer + 1}: %{{x:.0f}} keys, KL %{{y:.3g}}<extra></extra>"))
    if layer_keys is not None:
        lk = np.asarray(layer_keys, dtype=np.float64)
        at = [float(np.interp(np.log(max(v, 1.0)), np.log(x), y[i])) for i, v in enumerate(lk)]
        traces.append(go.Scatter(x=lk, y=np.maximum(at, floor), mode="markers", name="keys given to each layer",
                                 marker=dict(symbol="circle-open", size=10, color=OKABE_ITO[3], line=dict(width=2)),
                                 customdata=np.arange(1, layers + 1),
                                 hovertemplate="layer %{customdata}: given %{x:.1f} keys<extra></extra>"))
    note = None
    if water_level is not None:
        note = f"water level: a layer gets keys while one more cuts its KL by at least {water_level:.3g} nats"
    return go.Figure(traces, layout=layout_dict(
        "What each layer's keys are worth: KL against keys, one line per layer", height, note,
        xaxis=dict(title=dict(text="keys per query in that layer (log scale)"), type="log", zeroline=False),
        yaxis=dict(title=dict(text="KL to full when only that layer is budgeted (nats, log)"), type="log",
                   zeroline=False),
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.18, yanchor="top"),
        hovermode="closest",
    ))


def allocator_frontier(points: Sequence[Mapping], x_title: str = "density: share of pairs kept (counted)",
                       y_title: str = "KL divergence to full (nats, measured; lower is better)",
                       title: str = "One total, spent differently: quality against density",
                       log_x: bool = True, log_y: bool = True, height: int = 560) -> go.Figure:
    """:func:`~attnviz.figures.budget.frontier_plot` with one curve per allocator (each point's ``policy`` names
    its curve), efficient points ringed; points with ``y_lo``/``y_hi`` (the range over texts) get error bars
    from ``y_lo`` to ``y_hi`` around their ``y`` (the mean).  ``log_y``: a log quality axis (KL spans decades
    from scarce to generous totals) when every value is above 0."""
    fig = frontier_plot(points, x_title, y_title, log_x=log_x, title=title, height=height)
    if log_y and points and all(float(p.get("y_lo", p["y"])) > 0 for p in points):
        fig.layout.yaxis.type = "log"
        fig.layout.yaxis.title.text = f"{y_title}, log scale"
    if any("y_lo" in p for p in points):
        for trace in fig.data:
            mine = sorted((p for p in points if plotly_text(str(p["policy"])) == trace.name),
                          key=lambda p: float(p["x"]))
            if not mine or trace.mode != "lines+markers":
                continue
            y = np.array([float(p["y"]) for p in mine])
            hi = np.array([float(p.get("y_hi", p["y"])) for p in mine])
            lo = np.array([float(p.get("y_lo", p["y"])) for p in mine])
            trace.error_y = dict(type="data", symmetric=False, array=hi - y, arrayminus=y - lo, thickness=1.2,
                                 width=4)
    return fig
