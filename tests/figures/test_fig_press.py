"""Press figures: the kept-positions map and the press frontier."""

import numpy as np
import pytest

from attnviz.figures import kept_map, press_frontier_plot

LABELS = ["The", "␣cat", "␣<b>", "␣on"]


def test_kept_map_one_row_per_layer_shows_the_share_of_heads_keeping_each_token():
    kept = np.zeros((2, 3, 4), dtype=bool)
    kept[0, :, 0] = True  # every head of layer 1 keeps the first token
    kept[1, 0, 2] = True  # one of layer 2's heads keeps the third
    fig = kept_map(kept, LABELS)
    heat = fig.data[0]
    assert list(heat.y) == ["layer 1", "layer 2"]
    z = np.asarray(heat.z)
    assert z[0, 0] == 1 and z[1, 2] == pytest.approx(1 / 3) and z[0, 1] == 0
    assert heat.zmin == 0 and heat.zmax == 1 and heat.colorscale[-1][1] == "#0072B2"  # darker = kept
    assert "&lt;b&gt;" in heat.x[2]  # a token's text is escaped, and named in the hover
    assert heat.customdata[0][0].startswith("kept by all 3 KV heads")
    assert heat.customdata[1][2].startswith("1 of 3 KV heads keep it")


def test_kept_map_head_wise_has_a_row_per_layer_and_kv_head():
    kept = np.ones((2, 3, 4), dtype=bool)
    kept[1, 2, :3] = False
    fig = kept_map(kept, LABELS, head_wise=True)
    heat = fig.data[0]
    assert list(heat.y) == ["L1 h1", "L1 h2", "L1 h3", "L2 h1", "L2 h2", "L2 h3"]
    assert np.asarray(heat.z)[5].tolist() == [0, 0, 0, 1]
    assert "keeps 1 of 4" in heat.customdata[5][0]


def test_kept_map_refuses_shapes_that_do_not_match():
    with pytest.raises(ValueError, match="layers, kv_heads, C"):
        kept_map(np.ones((2, 4), dtype=bool), LABELS)
    with pytest.raises(ValueError, match="3 labels"):
        kept_map(np.ones((1, 1, 4), dtype=bool), LABELS[:3])


def test_press_frontier_draws_our_policies_dotted_and_rings_efficient_points():
    points = [
        {"x": 100, "y": 0.5, "policy": "snapkv", "label": "snapkv r=0.75", "efficient": True},
        {"x": 200, "y": 0.1, "policy": "snapkv", "label": "snapkv r=0.5", "efficient": True},
        {"x": 150, "y": 0.9, "policy": "window", "label": "window K=8", "efficient": False},
    ]
    fig = press_frontier_plot(points, policies=["window"])
    names = [t.name for t in fig.data]
    assert names == ["snapkv", "window (ours)", "efficient frontier", "efficient (Pareto) point"]
    assert fig.data[0].line.dash == "solid" and fig.data[1].line.dash == "dot"
    assert len(fig.data[3].x) == 2
    assert "KV cache" in fig.layout.xaxis.title.text and "KL" in fig.layout.yaxis.title.text
