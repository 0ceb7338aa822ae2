"""frontier_plot, attention_share_plot, metric_bar."""

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from attnviz.figures import attention_share_plot, frontier_plot, metric_bar
from attnviz.figures._common import text_px


def _points():
    pts = []
    for pol, base in (("window", 0.6), ("top-k", 0.9), ("random", 0.3)):
        for x in (0.5, 0.1, 0.25, 1.0):  # unsorted on purpose
            pts.append(dict(x=x, y=base * x**0.3, policy=pol, label=f"keep {x:.0%}", efficient=False))
    pts[4]["efficient"] = True  # top-k 0.5
    pts[6]["efficient"] = True  # top-k 0.25
    pts[9]["efficient"] = True  # random 0.1 (flagged by the caller: the plot trusts the flags)
    return pts


def test_frontier_one_trace_per_policy_sorted():
    fig = frontier_plot(_points(), "compute (share of pairs)", "quality", title="Frontier")
    assert isinstance(fig, go.Figure)
    per_policy = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in per_policy] == ["window", "top-k", "random"]
    for t in per_policy:
        assert list(t.x) == sorted(t.x)
    assert fig.layout.xaxis.title.text == "compute (share of pairs)"
    assert fig.layout.yaxis.title.text == "quality"
    assert "Frontier" in fig.layout.title.text
    assert fig.layout.xaxis.type == "linear"


def test_frontier_marks_exactly_the_efficient_points():
    pts = _points()
    fig = frontier_plot(pts, "x", "y", log_x=True)
    rings = [t for t in fig.data if t.name == "efficient (Pareto) point"]
    line = [t for t in fig.data if t.name == "efficient frontier"]
    assert len(rings) == 1 and len(line) == 1
    eff = sorted((p["x"], p["y"]) for p in pts if p["efficient"])
    assert sorted(zip(rings[0].x, rings[0].y, strict=True)) == eff
    assert list(zip(line[0].x, line[0].y, strict=True)) == eff  # joined in x order
    assert line[0].line.dash == "dash"
    assert rings[0].marker.symbol not in {t.marker.symbol for t in fig.data if t.mode == "lines+markers"}
    assert fig.layout.xaxis.type == "log"
    # hover names the policy and the label in words
    top_k = next(t for t in fig.data if t.name == "top-k")
    assert top_k.customdata[0][1] == "keep 10%"
    assert "on the efficient frontier" in [c[2] for c in top_k.customdata]


def test_frontier_legend_sits_below_the_plot_in_rows():
    """On the right, the legend took a third of a phone's 390 px and covered the points there: it goes under the
    x axis title, in rows, left-aligned (plotly widens the bottom margin to fit its rows)."""
    legend = frontier_plot(_points(), "x", "y").layout.legend
    assert legend.orientation == "h"
    assert legend.yanchor == "top" and legend.y <= -0.12  # its top below the plot area and the axis title
    assert legend.xanchor == "left" and legend.x == 0
    assert legend.yref in (None, "paper")


def test_frontier_draws_oracles_dotted_and_names_them():
    fig = frontier_plot(_points(), "x", "y", oracles={"top-k"})
    lines = {t.name: t.line.dash for t in fig.data if t.mode == "lines+markers"}
    assert lines == {"window": "solid", "top-k (oracle)": "dot", "random": "solid"}


def test_frontier_without_efficient_points_and_escaping():
    pts = [dict(x=1, y=2, policy="<script>", label="a&b", efficient=False)]
    fig = frontier_plot(pts, "x", "y")
    assert not [t for t in fig.data if "efficient" in (t.name or "")]
    assert fig.data[0].name == "&lt;script&gt;"
    with pytest.raises(ValueError):
        frontier_plot([dict(x=1, policy="a")], "x", "y")


def test_attention_share_plot():
    ns = np.array([64, 128, 256, 512, 1024])
    curves = {
        "sink": (ns, np.array([0.2, 0.3, 0.4, 0.5, 0.6])),
        "window": (ns[::-1], np.array([0.1, 0.2, 0.3, 0.4, 0.5])),
    }
    fig = attention_share_plot(curves, marker_n=300)
    assert fig.layout.xaxis.type == "log"
    assert fig.layout.yaxis.ticksuffix == "%"
    sink = fig.data[0]
    assert sink.name == "sink" and list(sink.y) == pytest.approx([20, 30, 40, 50, 60])
    assert list(fig.data[1].x) == sorted(fig.data[1].x)  # sorted by context length
    marker = fig.data[-1]
    assert list(marker.x) == [300, 300] and "300 tokens" in marker.name
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert 64 in list(fig.layout.xaxis.tickvals)
    fig = attention_share_plot(curves)
    assert len(fig.data) == 2


def test_metric_bar():
    fig = metric_bar({"full": 10.0, "top-k": 11.0}, "Perplexity", "perplexity", reference=10.0, highlight="top-k")
    bar = fig.data[0]
    assert bar.type == "bar" and list(bar.y) == ["full", "top-k"] and list(bar.x) == [10.0, 11.0]
    assert bar.marker.color[0] != bar.marker.color[1]
    assert fig.layout.xaxis.title.text == "perplexity"
    assert any(s.type == "line" for s in fig.layout.shapes)


def test_frontier_title_fits_a_phone():
    """plotly never wraps a title: at 390 px (a chart about 358 px wide) the one-line title and note were cut.
    Every line of both now fits 320 px (bold 17 px title: text_px's estimate plus 10 % for the bold)."""
    fig = frontier_plot(_points(), "x", "y", log_x=True)
    lines = re.sub(r"<(?!br>)[^>]*>", "", fig.layout.title.text).split("<br>")
    assert len(lines) == 3  # the title, then the note on two lines
    assert text_px(lines[0], 17) * 1.1 <= 320
    assert all(text_px(line, 13) <= 320 for line in lines[1:])
