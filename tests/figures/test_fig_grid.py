"""head_grid and head_stat_heatmap."""

import numpy as np
import plotly.graph_objects as go
import pytest
from helpers_figures import causal_attention

from attnviz.figures import head_grid, head_stat_heatmap
from attnviz.figures._common import COLORBAR_GAP_PX, MODEBAR_PX, text_px


def _thumbs(layers, heads, s):
    return np.array([[causal_attention(s, seed=10 * li + h) for h in range(heads)] for li in range(layers)])


def test_all_layers_one_trace_and_layout():
    th = _thumbs(30, 9, 16)
    fig = head_grid(th, title="All heads")
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"  # one trace: fast to render
    assert "All heads" in fig.layout.title.text
    # 30 layers x 9 heads on a wide page: layers run across
    assert fig.layout.xaxis.title.text == "layer" and fig.layout.yaxis.title.text == "head"
    assert len(fig.layout.xaxis.tickvals) == 30 and len(fig.layout.yaxis.tickvals) == 9
    z = fig.data[0].z
    gap = 2
    assert z.shape == (9 * (16 + gap) - gap, 30 * (16 + gap) - gap)
    assert np.isnan(z[:, 16]).all()  # the gap column between layer 0 and layer 1
    # tile (head 3, layer 5) holds that head's thumbnail
    r0, c0 = 3 * (16 + gap), 5 * (16 + gap)
    np.testing.assert_allclose(z[r0 : r0 + 16, c0 : c0 + 16], th[5, 3], atol=1e-6)
    # hover names tell layer and head
    assert fig.data[0].x[c0 + 2] == "layer 5 · key 2"
    assert fig.data[0].y[r0 + 7] == "head 3 · query 7"
    assert "%{x}" in fig.data[0].hovertemplate and "%{y}" in fig.data[0].hovertemplate
    assert fig.data[0].hoverongaps is False
    assert 300 <= fig.layout.height <= 1400
    assert len(fig.to_json()) <= 2 * 1024 * 1024


def test_rows_orientation_and_labels():
    th = _thumbs(3, 4, 8)
    fig = head_grid(th, layer_labels=["L0", "L1", "L2"], head_labels=["a", "b", "c", "d"], layers_as="rows")
    assert fig.layout.yaxis.title.text == "layer"
    assert list(fig.layout.yaxis.ticktext) == ["L0", "L1", "L2"]
    assert list(fig.layout.xaxis.ticktext) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        head_grid(th, layers_as="diagonal")
    with pytest.raises(ValueError):
        head_grid(th, layer_labels=["just one"])


def test_single_layer_and_pooled_thumbnails():
    th = _thumbs(1, 6, 100)[0]  # (heads, s, s)
    fig = head_grid(th, layer_labels=["7"], title="Layer 7")
    assert len(fig.layout.xaxis.tickvals) == 6
    assert fig.layout.xaxis.title.text == "head"
    assert "resolution" in fig.layout.title.text  # 100 > max_thumb: pooled, and the title says so
    assert "queries" in fig.data[0].y[0]
    # pooled in share mode: each thumbnail row still sums to 1
    z = fig.data[0].z
    side = z.shape[0]
    np.testing.assert_allclose(np.nansum(z[:, :side], axis=1), 1.0, atol=1e-4)


def test_big_model_grid_stays_small():
    th = _thumbs(30, 9, 64)
    fig = head_grid(th)
    assert len(fig.to_json()) <= 2 * 1024 * 1024


def test_zmax_default_is_capped_percentile():
    th = _thumbs(2, 2, 8)
    fig = head_grid(th)
    assert fig.data[0].zmax <= float(np.nanmax(th))
    fig = head_grid(th, zmax=0.5)
    assert fig.data[0].zmax == 0.5


def test_head_stat_heatmap():
    v = np.arange(30 * 9, dtype=float).reshape(30, 9) / 100
    fig = head_stat_heatmap(v, "entropy (bits)")
    tr = fig.data[0]
    assert tr.type == "heatmap" and tr.z.shape == (30, 9)
    assert "Entropy (bits)" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    assert len(fig.layout.yaxis.tickvals) == 30 and len(fig.layout.xaxis.tickvals) == 9
    assert tr.text[4][2] == "layer 4, head 2"
    assert "entropy (bits)" in tr.hovertemplate and "%{text}" in tr.hovertemplate
    assert tr.texttemplate  # numbers written in the cells
    fig = head_stat_heatmap(v, "<sink> & share", layer_labels=[str(i) for i in range(30)])
    assert "&lt;sink&gt; &amp; share" in fig.layout.title.text


def _caption_clear_of_the_toolbar(fig):
    """The colour bar stands at a fixed gap right of the plot, and the right margin holds its caption lines and
    ticks with MODEBAR_PX to spare: plotly's vertical toolbar covered the caption at 1024 px."""
    bar = fig.data[0].colorbar
    assert (bar.x, bar.xanchor, bar.xpad) == (1.0, "left", COLORBAR_GAP_PX)
    widest = max(text_px(line, 14) for line in bar.title.text.split("<br>"))
    assert fig.layout.margin.r >= COLORBAR_GAP_PX + widest + MODEBAR_PX


@pytest.mark.parametrize("shape", [(9, 16, 16), (30, 9, 16, 16)], ids=["one-layer", "all-layers"])
def test_head_grid_colour_bar_clear_of_the_toolbar(shape):
    th = _thumbs(shape[0], shape[1], 16) if len(shape) == 4 else _thumbs(1, 9, 16)[0]
    _caption_clear_of_the_toolbar(head_grid(th, zmax=0.05))  # capped: the longest caption


def test_head_stat_heatmap_colour_bar_clear_of_the_toolbar():
    _caption_clear_of_the_toolbar(head_stat_heatmap(np.random.default_rng(0).random((30, 9)), "mass in top 3 keys"))
