"""'Spend a budget' page, run headless with Streamlit's AppTest on the bundled models."""

import json

import pytest
from streamlit.testing.v1 import AppTest

from attnviz.policies import POLICIES

from .apptest import metrics, run_page

POLICY_NAMES = [name for name, cls in POLICIES.items() if not cls.reference]


def open_page(**params) -> AppTest:
    return run_page("budget", **params)


def test_budget_page_draws_its_widgets_and_numbers():
    at = open_page()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Spend an attention budget"
    assert at.selectbox(key="policy").value == "topk"
    assert [o.split(":")[0] for o in at.selectbox(key="policy").options] == POLICY_NAMES
    assert at.radio(key="mode").value == "keys"
    assert at.slider(key="k").value == 11  # K=16 by default, clamped to the text's 11 tokens
    assert at.number_input(key="layer").value == 14  # numbered from 1, as on the other pages
    assert at.number_input(key="head").value == 9
    shown = metrics(at)
    for label in ("KL divergence (nats)", "Top-1 agreement", "Perplexity", "Attention mass kept", "Density",
                  "Attention FLOPs", "Whole-model FLOPs", "KV cache at the end", "Time (measured)"):
        assert label in shown
    assert shown["Density"] == "100.0%"  # K = n keeps every pair
    assert len(at.get("plotly_chart")) == 3  # full, budget, difference
    assert at.get("download_button")


def test_moving_the_budget_slider_changes_the_numbers():
    at = open_page()
    before = metrics(at)
    at.slider(key="k").set_value(2).run()
    assert not at.exception
    after = metrics(at)
    assert after["Density"] != before["Density"]
    assert after["KL divergence (nats)"] != before["KL divergence (nats)"]
    assert float(after["KL divergence (nats)"]) > 0
    assert at.query_params["k"] == "2"
    assert any("prediction changed" in m.value for m in at.markdown)


def test_every_policy_runs():
    at = open_page(k=4)
    for policy in POLICY_NAMES:
        at.selectbox(key="policy").set_value(policy).run()
        assert not at.exception, policy
        assert at.selectbox(key="policy").value == policy
        assert not at.error, (policy, [e.value for e in at.error])
        assert "Density" in metrics(at), policy
        if policy == "sink_window":
            assert at.number_input(key="param.sink_window.sinks").value == 4
        if policy == "random":
            assert at.number_input(key="param.random.seed").value == 0
        if policy == "topp":  # a share of attention mass, never a key count
            assert at.radio(key="mode").value == "ratio"
            assert at.radio(key="mode").disabled


def test_url_reproduces_the_view():
    at = open_page(policy="window", k=3, layer=2, head=1)
    assert not at.exception
    assert at.selectbox(key="policy").value == "window"
    assert at.slider(key="k").value == 3
    assert at.number_input(key="layer").value == 2
    assert at.number_input(key="head").value == 1
    assert any("layer 2, head 1" in str(c.proto) for c in at.get("plotly_chart"))
    moved = open_page()
    moved.selectbox(key="policy").set_value("window").run()
    moved.slider(key="k").set_value(3).run()
    assert metrics(at)["Density"] == metrics(moved)["Density"]
    assert metrics(at)["KL divergence (nats)"] == metrics(moved)["KL divergence (nats)"]


def test_empty_text_shows_an_error_not_a_traceback():
    at = open_page()
    at.text_area(key="text").set_value("").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)
    assert not at.metric


@pytest.mark.parametrize("how", ["url", "widgets"])
def test_a_causal_only_policy_on_an_encoder_says_why(how):
    if how == "url":
        at = open_page(model="minilm", policy="h2o")
    else:
        at = open_page()
        at.selectbox(key="model").set_value("minilm").run()
        at.selectbox(key="policy").set_value("h2o").run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Running the budget: policy 'h2o' needs a causal (left-to-right) model: it simulates a KV cache that grows "
        "token by token, which an encoder does not have"
    ]
    assert not at.metric


def test_minilm_shows_encoder_metrics():
    at = open_page(model="minilm", k=4)
    assert not at.exception
    assert not at.error
    shown = metrics(at)
    assert "Sentence-embedding cosine" in shown
    assert "KL divergence (nats)" not in shown
    assert shown["KV cache"] == "none"
    assert at.number_input(key="layer").value == 6  # the default layer 14 clamped to MiniLM's 6 layers


def test_a_plugin_policy_gets_a_control_per_parameter_and_a_link(every_other):
    """With ATTNVIZ_PLUGINS set, the page offers the user's policy, draws its parameter from the field's type and
    metadata, reruns when it changes, and carries it in the link; a link's bad value is said in the CLI's words."""
    at = open_page(policy="every_other", k=4)
    assert not at.exception and not at.error
    assert "every_other" in [o.split(":")[0] for o in at.selectbox(key="policy").options]
    box = at.number_input(key="param.every_other.phase")
    assert (box.value, box.min, box.max) == (0, 0, 1)
    even = metrics(at)["Density"]
    box.set_value(1).run()
    assert not at.exception and not at.error
    assert at.query_params["param.every_other.phase"] == "1"
    assert metrics(at)["Density"] != even
    linked = open_page(policy="every_other", k=4, **{"param.every_other.phase": 1})
    assert linked.number_input(key="param.every_other.phase").value == 1
    assert metrics(linked)["Density"] == metrics(at)["Density"]
    bad = open_page(policy="every_other", k=4, **{"param.every_other.phase": 5})
    assert not bad.exception
    assert any("parameter phase must be an integer from 0 to 1, got 5" in w.value for w in bad.warning)
    assert bad.number_input(key="param.every_other.phase").value == 0


def test_each_policy_starts_at_its_own_size():
    """Top-p reused the ratio slider's 0.25 (top-1 40%, perplexity 511: it looked broken); each policy now starts at
    its own default size when chosen, and on first load, unless the link gives a size."""
    at = open_page()
    at.slider(key="k").set_value(3).run()
    at.selectbox(key="policy").set_value("topp").run()
    assert not at.exception and not at.error
    assert at.slider(key="r").value == POLICIES["topp"].default_ratio == 0.9
    at.selectbox(key="policy").set_value("window").run()
    assert at.radio(key="mode").value == "keys"
    assert at.slider(key="k").value == 11  # window's default K=16, clamped to the 11 tokens (not the 3 set before)
    assert open_page(policy="topp").slider(key="r").value == 0.9
    assert open_page(policy="topp", r=0.5).slider(key="r").value == 0.5
    assert open_page(policy="window", k=3).slider(key="k").value == 3


def test_side_by_side_heatmaps_share_one_colour_scale():
    # On an encoder no row is forced to 1.0 (a causal model's first token keeps its only key), so each heatmap's
    # own top differs: full attention spreads, K=2 concentrates.
    at = open_page(model="minilm", k=2)
    assert not at.exception and not at.error
    full, budget = (json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart")[:2])
    assert full["zmin"] == budget["zmin"] == 0
    assert full["zmax"] == budget["zmax"]
    assert any("How tokens are written" in c.value for c in at.caption)  # the token legend under the heatmaps


def test_every_control_round_trips_through_the_link():
    """Policy, budget mode, K or r, layer, head and the policy's own parameters open at the link's values, and
    moving each through its widget writes the new value back to the link."""
    at = open_page(policy="sink_window", mode="keys", k=6, layer=3, head=2, **{"param.sink_window.sinks": 2})
    assert not at.exception and not at.error and not at.warning
    assert at.selectbox(key="policy").value == "sink_window"
    assert at.radio(key="mode").value == "keys"
    assert at.slider(key="k").value == 6
    assert at.number_input(key="layer").value == 3
    assert at.number_input(key="head").value == 2
    assert at.number_input(key="param.sink_window.sinks").value == 2
    at.slider(key="k").set_value(7).run()
    at.number_input(key="layer").set_value(4).run()
    at.number_input(key="head").set_value(5).run()
    at.number_input(key="param.sink_window.sinks").set_value(3).run()
    assert not at.exception and not at.error
    assert {name: at.query_params[name] for name in ("policy", "mode", "k", "layer", "head")} == {
        "policy": "sink_window", "mode": "keys", "k": "7", "layer": "4", "head": "5"}
    assert at.query_params["param.sink_window.sinks"] == "3"

    at = open_page(policy="random", mode="ratio", r=0.3, layer=2, head=1, **{"param.random.seed": 7})
    assert not at.exception and not at.error and not at.warning
    assert at.selectbox(key="policy").value == "random"
    assert at.radio(key="mode").value == "ratio"
    assert at.slider(key="r").value == 0.3
    assert at.number_input(key="param.random.seed").value == 7
    at.slider(key="r").set_value(0.5).run()
    at.number_input(key="param.random.seed").set_value(8).run()
    assert not at.exception and not at.error
    assert at.query_params["r"] == "0.5" and at.query_params["param.random.seed"] == "8"
    assert "k" not in at.query_params
    at.radio(key="mode").set_value("keys").run()
    at.selectbox(key="policy").set_value("window").run()
    assert not at.exception and not at.error
    assert at.query_params["mode"] == "keys" and at.query_params["policy"] == "window"
    assert "r" not in at.query_params and "param.random.seed" not in at.query_params
