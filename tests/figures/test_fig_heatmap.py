"""attention_heatmap / difference_heatmap / keep_mask_heatmap."""

import numpy as np
import plotly.graph_objects as go
import pytest
from helpers_figures import DUP_LABELS, NASTY, causal_attention

from attnviz.figures import attention_heatmap, difference_heatmap, keep_mask_heatmap

MB2 = 2 * 1024 * 1024


def test_attention_heatmap_basic():
    n = len(DUP_LABELS)
    fig = attention_heatmap(causal_attention(n), DUP_LABELS, DUP_LABELS, title="Layer 1, head 2")
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    assert "Layer 1, head 2" in fig.layout.title.text
    assert "resolution" not in fig.layout.title.text
    assert "key" in fig.layout.xaxis.title.text and "query" in fig.layout.yaxis.title.text
    assert fig.layout.height >= 500
    assert fig.data[0].colorscale is not None
    hover = fig.data[0].hovertemplate
    assert "query %{y} → key %{x}" in hover and "of its attention" in hover
    assert fig.data[0].z.dtype == np.float32  # typed array, serialised compactly


def test_duplicate_labels_do_not_merge():
    n = len(DUP_LABELS)
    fig = attention_heatmap(causal_attention(n), DUP_LABELS, DUP_LABELS)
    for axis, coords in ((fig.layout.xaxis, fig.data[0].x), (fig.layout.yaxis, fig.data[0].y)):
        assert len(axis.tickvals) == n
        assert len(set(axis.tickvals)) == n
        assert list(axis.ticktext).count("cat") == 2  # the tick shows the word twice …
        assert len(set(coords)) == n  # … but each position is its own row / column
        assert axis.type == "category" and list(axis.categoryarray) == list(coords)
    assert fig.data[0].y[3] == "‘the’ (#3)"


def test_labels_are_escaped_for_plotly_and_cjk_emoji_survive():
    labels = ["a", NASTY, "猫は", "🐱‍👤", "x" * 80]
    fig = attention_heatmap(causal_attention(5), labels, labels)
    ticks = list(fig.layout.xaxis.ticktext)
    assert ticks[1] == '&lt;b&gt;&amp;"'
    assert ticks[2] == "猫は" and ticks[3] == "🐱‍👤"
    assert ticks[4].endswith("…") and len(ticks[4]) <= 12
    assert "<b>" not in "".join(fig.data[0].x)


def test_label_length_mismatch_raises():
    with pytest.raises(ValueError):
        attention_heatmap(causal_attention(4), ["a", "b"], ["a", "b", "c", "d"])


def test_512_tokens_pooled_and_small():
    n = 512
    w = causal_attention(n)
    labels = [f"tok{i % 50}" for i in range(n)]
    fig = attention_heatmap(w, labels, labels)
    assert fig.data[0].z.shape == (256, 256)
    assert "1/2 resolution" in fig.layout.title.text and "2×2 token pairs" in fig.layout.title.text
    np.testing.assert_allclose(np.nansum(fig.data[0].z, axis=1), 1.0, atol=1e-4)
    assert len(fig.to_json()) <= MB2


def test_512_tokens_unpooled_still_under_2mb():
    n = 512
    labels = ["word"] * n
    fig = attention_heatmap(causal_attention(n), labels, labels, max_side=512)
    assert fig.data[0].z.shape == (512, 512)
    assert len(fig.to_json()) <= MB2
    # many tokens: ticks are thinned so labels don't overlap, on round positions
    assert 8 <= len(fig.layout.yaxis.tickvals) < n
    assert fig.layout.xaxis.tickvals[1] in ("‘word’ (#10)", "‘word’ (#20)", "‘word’ (#25)")


def test_4x_pooling_title():
    w = causal_attention(1024)
    fig = attention_heatmap(w, None, None, max_side=256)
    assert "1/4 resolution" in fig.layout.title.text and "4×4" in fig.layout.title.text
    assert "queries %{y}" in fig.data[0].hovertemplate


def test_zmax_caps_colour():
    fig = attention_heatmap(causal_attention(6), zmax=0.2)
    assert fig.data[0].zmax == pytest.approx(0.2) and fig.data[0].zmin == 0


def test_difference_heatmap_symmetric_and_hover_has_both_values():
    n = len(DUP_LABELS)
    full = causal_attention(n)
    budget = np.where(full > 0.15, full, 0.0)
    budget /= budget.sum(axis=1, keepdims=True)
    fig = difference_heatmap(full, budget, DUP_LABELS, DUP_LABELS)
    tr = fig.data[0]
    assert tr.zmin == pytest.approx(-tr.zmax) and tr.zmid == 0
    assert tr.zmax == pytest.approx(np.abs(budget - full).max(), rel=1e-5)
    assert tr.colorscale[0][1] != tr.colorscale[-1][1]  # diverging
    np.testing.assert_allclose(tr.z, budget - full, atol=1e-6)
    np.testing.assert_allclose(tr.customdata[..., 0], full, atol=1e-6)
    np.testing.assert_allclose(tr.customdata[..., 1], budget, atol=1e-6)
    for word in ("full model", "with budget", "change", "%{customdata[0]", "%{customdata[1]", "%{z"):
        assert word in tr.hovertemplate
    assert "budget − full" in fig.layout.title.text
    assert len(fig.layout.xaxis.tickvals) == n


def test_difference_heatmap_zmax_and_512_size():
    n = 512
    full = causal_attention(n)
    budget = causal_attention(n, seed=1)
    fig = difference_heatmap(full, budget, zmax=0.5)
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-0.5, 0.5)
    assert len(fig.to_json()) <= MB2
    with pytest.raises(ValueError):
        difference_heatmap(full, budget[:10])


def test_keep_mask_heatmap_full_res_and_pooled():
    n = 6
    keep = np.tril(np.ones((n, n), bool))
    keep[5, 2] = False
    fig = keep_mask_heatmap(keep, causal=True)
    names = [t.name for t in fig.data]
    assert names == ["kept", "dropped"]
    kept, dropped = fig.data
    assert np.nansum(kept.z) == keep.sum()
    assert np.isfinite(dropped.z).sum() == 1  # only (5, 2): future cells are blank, not "dropped"
    assert "kept" in kept.hovertemplate and "dropped" in dropped.hovertemplate
    big = np.random.default_rng(0).random((600, 600)) < 0.3
    fig = keep_mask_heatmap(big, max_side=200)
    assert fig.data[0].z.shape == (200, 200)
    assert "1/3 resolution" in fig.layout.title.text
    assert abs(float(np.nanmean(fig.data[0].z)) - big.mean()) < 1e-6


def test_max_x_ticks_thins_the_key_labels_only():
    n = 38
    w = np.tril(np.ones((n, n)))
    w /= w.sum(1, keepdims=True)
    labels = [f"t{i}" for i in range(n)]
    wide = attention_heatmap(w, labels, labels)
    narrow = attention_heatmap(w, labels, labels, max_x_ticks=20)
    assert len(wide.layout.xaxis.tickvals) == n
    assert 10 <= len(narrow.layout.xaxis.tickvals) <= 20
    assert narrow.layout.yaxis.tickvals == wide.layout.yaxis.tickvals


def test_margins_are_set_up_front_from_the_labels_and_colour_bar():
    """plotly would push the margins out to fit the labels and draw again; they are big enough from the start."""
    w = causal_attention(20)
    short = attention_heatmap(w, ["a"] * 20, ["a"] * 20).layout.margin
    long = attention_heatmap(w, ["␣earthquakes"] * 20, ["␣earthquakes"] * 20).layout.margin
    cjk = attention_heatmap(w, ["注意力机制"] * 20, ["注意力机制"] * 20).layout.margin
    assert long.l > short.l + 40 and long.b > short.b + 30  # the keys' labels stand at -60 degrees
    assert cjk.l > attention_heatmap(w, ["abcde"] * 20, ["abcde"] * 20).layout.margin.l
    diff = difference_heatmap(w, w * 0.5, ["a"] * 20, ["a"] * 20).layout.margin
    assert diff.r > short.r  # its colour bar's tick labels ("+0.05 gained") are wider
    mask = keep_mask_heatmap(w > 0.05, ["a"] * 20, ["a"] * 20).layout.margin
    assert mask.r < short.r  # no colour bar at full resolution
    for fig in (attention_heatmap(w), difference_heatmap(w, w)):
        assert fig.layout.xaxis.automargin and fig.layout.yaxis.automargin  # a label wider than estimated still fits


def test_shared_zmax_gives_side_by_side_heatmaps_one_scale():
    from attnviz.figures.heatmap import shared_zmax

    a = np.array([[1.0, 0.0], [0.3, 0.7]])
    b = np.array([[1.0, 0.0], [0.5, 0.5]]) * 0.8
    top = shared_zmax(a, b)
    assert top == 1.0
    figs = [attention_heatmap(m, zmax=top) for m in (a, b)]
    assert [(f.data[0].zmin, f.data[0].zmax) for f in figs] == [(0.0, 1.0), (0.0, 1.0)]
    big = np.full((600, 600), 1 / 600)  # pooled 3 keys to a cell: the drawn values are 3× larger
    assert shared_zmax(big) == pytest.approx(attention_heatmap(big).data[0].zmax, rel=1e-6)


def test_a_pooled_heatmaps_note_takes_two_short_lines():
    """At 1024 tokens the pooling note was one 110-character line that plotly (titles never wrap) cut in a
    half-width chart; it is now two lines of at most 60 characters, with the top margin grown to hold them."""
    import re

    n = 1024
    w = np.tril(np.ones((n, n)))
    w /= w.sum(1, keepdims=True)
    fig = attention_heatmap(w, [str(i) for i in range(n)], [str(i) for i in range(n)], max_side=256)
    lines = [re.sub("<[^>]+>", "", part) for part in fig.layout.title.text.split("<br>")[1:]]
    assert len(lines) == 2 and all(len(line) <= 60 for line in lines), lines
    assert fig.layout.margin.t == 70 + 2 * 25
