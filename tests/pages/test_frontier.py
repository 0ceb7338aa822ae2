"""'Quality vs compute' page, run headless with Streamlit's AppTest; sweeps stay small (one or two policies)."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from attnviz.policies import get_policy

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TEXT = "The cat sat on the mat because it was tired."  # 11 tokens
N_TOKENS = 11


def open_page(policies=("window",), **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"text": TEXT, **{k: str(v) for k, v in params.items()}})
    at.session_state["fr_policies"] = list(policies)  # the default sweeps every policy: too slow for a test
    return at.switch_page("pages/frontier.py").run()


def table(at: AppTest):
    return at.dataframe[0].value


def test_frontier_page_draws_its_widgets_plot_and_table():
    at = open_page()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Quality vs compute"
    assert at.multiselect(key="fr_policies").value == ["window"]
    assert at.multiselect(key="fr_policies").options == ["topk", "topp", "window", "sink_window", "h2o", "random"]
    assert at.selectbox(key="fr_x").value == "density"
    assert at.selectbox(key="fr_y").value == "kl"
    rows = table(at)
    assert list(rows["policy"]) == ["window"] * len(get_policy("window").ladder(N_TOKENS))
    assert rows["efficient"].any()
    assert (rows["kl"] >= 0).all()
    assert len(at.get("plotly_chart")) == 2  # the frontier and the attention-share curves
    assert len(at.get("download_button")) == 2  # CSV and JSON


def test_the_table_reads_in_words_and_keeps_its_raw_columns():
    """Labels and formats are display-only: the rows (and the CSV made from them) keep keys and raw numbers."""
    at = open_page()
    shown = at.dataframe[0].proto
    config = json.loads(shown.columns)
    order = list(shown.column_order)
    assert order[:2] == ["budget", "density"] and "efficient" in order
    assert not any(k.endswith("_full") for k in order)  # the same on every row: said once, in the caption
    assert "policy" in table(at).columns and "policy" not in order  # the budget label names it
    assert config["kl"]["label"] == "KL (nats)" and config["top1"]["type_config"]["format"] == "percent"
    assert all("label" in config[k] for k in order)
    assert any(c.value.startswith("Full attention on this text: perplexity") for c in at.caption)
    assert {"ppl_full", "attn_flops_full", "kv_bytes_full"} <= set(table(at).columns)


def test_choosing_more_budgets_changes_the_numbers():
    at = open_page(policies=("random",))
    before = table(at)
    assert set(before["policy"]) == {"random"}
    at.multiselect(key="fr_policies").set_value(["random", "sink_window"]).run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    after = table(at)
    assert set(after["policy"]) == {"random", "sink_window"}
    assert len(after) == len(before) + len(get_policy("sink_window").ladder(N_TOKENS))
    assert after["budget"].str.contains("S=4").any()
    at.multiselect(key="fr_policies").set_value([]).run()  # nothing chosen: no sweep, no crash
    assert not at.exception
    assert not at.dataframe


def test_changing_an_axis_keeps_the_plot_and_table():
    """A rerun that finds the sweep in the cache must still draw it (any widget change reruns the page)."""
    at = open_page(policies=("h2o",))
    assert len(at.dataframe) == 1
    at.selectbox(key="fr_y").set_value("top1").run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.dataframe) == 1
    assert len(at.get("plotly_chart")) == 2


def test_url_reproduces_the_axes():
    at = open_page(policies=("sink_window",), fr_x="attn_flops", fr_y="top1")
    assert not at.exception
    assert at.selectbox(key="fr_x").value == "attn_flops"
    assert at.selectbox(key="fr_y").value == "top1"
    assert at.query_params["fr_x"] == "attn_flops"
    assert at.query_params["fr_y"] == "top1"
    assert len(at.get("plotly_chart")) == 2


def test_empty_text_shows_an_error_not_a_traceback():
    at = open_page(policies=())
    at.text_area(key="text").set_value("").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)
    assert not at.dataframe


def test_an_encoder_offers_only_fitting_policies_and_quality_axes():
    at = open_page(model="minilm", fr_y="kl", fr_x="kv_bytes")
    assert not at.exception
    assert not at.error
    assert "h2o" not in at.multiselect(key="fr_policies").options  # causal-only: not offered for MiniLM
    assert at.selectbox(key="fr_y").value == "cos_embedding"  # KL needs a next-token distribution
    assert any("no KV cache" in i.value for i in at.info)
    assert (table(at)["cos_embedding"] <= 1 + 1e-6).all()


def test_a_plugin_policy_is_swept_with_its_parameter(every_other):
    """With ATTNVIZ_PLUGINS set, the user's policy is among the choices, gets a control for its parameter, and its
    rows carry the chosen value; changing it sweeps again with the new value."""
    at = open_page(policies=("every_other",))
    assert not at.exception and not at.error
    assert "every_other" in at.multiselect(key="fr_policies").options
    box = at.number_input(key="fr_param.every_other.phase")
    assert box.value == 0
    before = table(at)
    assert set(before["policy"]) == {"every_other"} and all(b.endswith("phase=0") for b in before["budget"])
    box.set_value(1).run()
    assert not at.exception and not at.error
    after = table(at)
    assert all(b.endswith("phase=1") for b in after["budget"])
    assert list(after["density"]) != list(before["density"])
    assert at.query_params["fr_param.every_other.phase"] == "1"
