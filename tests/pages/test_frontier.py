"""'Quality vs compute' page, run headless with Streamlit's AppTest; sweeps stay small (one or two policies)."""

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui.cached
from attnviz.policies import get_policy

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TEXT = "The cat sat on the mat because it was tired."  # 11 tokens
N_TOKENS = 11


def open_page(policies=("window",), **params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    # The default sweeps every policy: too slow for a test, so the link names a few.
    at.query_params.update({"text": TEXT, "fr_policies": ",".join(policies), **{k: str(v) for k, v in params.items()}})
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
    assert at.selectbox(key="fr_x").value == "attn_flops"
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


def test_the_default_compute_axis_charges_scoring_and_oracles_keep_the_whole_cache():
    """Density would ring the oracles (few links kept, yet every pair scored and the whole cache kept): the default
    axis is attention FLOPs, where an oracle pays for every score, and the page says what a ring means there."""
    at = open_page(policies=("topk", "h2o"))
    assert not at.exception and not at.error
    assert at.selectbox(key="fr_x").value == "attn_flops"
    assert at.query_params["fr_x"] == "attn_flops"
    assert "scoring included" in at.selectbox(key="fr_x").format_func("attn_flops")
    assert "not work saved" in at.selectbox(key="fr_x").format_func("density")
    assert any(m.value.startswith("**Efficient** on attention FLOPs") for m in at.markdown)
    names = [t.get("name") for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert "topk (oracle)" in names and "h2o" in names  # an oracle's ring is not read as a cheap policy's
    rows = table(at)
    oracle, evicting = rows[rows["policy"] == "topk"], rows[rows["policy"] == "h2o"]
    assert (oracle["attn_flops"] >= oracle["attn_flops_full"] / 2).all()  # every pair scored: at most half saved
    assert (oracle["kv_bytes"] == oracle["kv_bytes_full"]).all()
    assert (evicting["kv_bytes"] < evicting["kv_bytes_full"]).all()
    assert (evicting["attn_flops"] < evicting["attn_flops_full"] / 2).any()


def test_each_axis_says_what_efficient_means():
    for x, words in (("kv_bytes", "**Efficient** on KV cache bytes"), ("density", "**Efficient** on density")):
        at = open_page(policies=("window",), fr_x=x)
        assert not at.exception and not at.error
        assert any(m.value.startswith(words) for m in at.markdown), x


LINK = {"fr_policies": "sink_window,random", "fr_x": "kv_bytes", "fr_y": "top1",
        "fr_param.sink_window.sinks": "2", "fr_param.random.seed": "3"}


def test_a_link_reproduces_every_control_and_keeps_them_all():
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"text": TEXT, **LINK})
    at.switch_page("pages/frontier.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.multiselect(key="fr_policies").value == ["sink_window", "random"]
    assert at.selectbox(key="fr_x").value == "kv_bytes"
    assert at.selectbox(key="fr_y").value == "top1"
    assert at.number_input(key="fr_param.sink_window.sinks").value == 2
    assert at.number_input(key="fr_param.random.seed").value == 3
    assert {k: at.query_params.get(k) for k in LINK} == LINK  # both policies' parameters stay in the link
    assert all(("S=2" in b) or ("seed=3" in b) for b in table(at)["budget"])
    # Changing each control writes it to the link.
    at.multiselect(key="fr_policies").set_value(["window", "random"]).run()
    at.number_input(key="fr_param.random.seed").set_value(5).run()
    at.selectbox(key="fr_x").set_value("density").run()
    assert not at.exception and not at.error
    assert at.query_params["fr_policies"] == "window,random"
    assert at.query_params["fr_param.random.seed"] == "5"
    assert "fr_param.sink_window.sinks" not in at.query_params  # not chosen: says nothing about this view
    assert at.query_params["fr_x"] == "density"
    at.multiselect(key="fr_policies").set_value(["topk", "topp", "window", "sink_window", "h2o", "random"])
    at.run(timeout=600)
    assert "fr_policies" not in at.query_params  # every policy: the default, no parameter needed


def test_a_link_naming_an_unknown_policy_says_so():
    at = open_page(policies=("window", "nonsense"))
    assert not at.exception
    assert at.multiselect(key="fr_policies").value == ["window"]
    assert any("nonsense" in w.value for w in at.warning)


def test_the_selection_survives_another_page():
    at = open_page(policies=("window",))
    at.multiselect(key="fr_policies").set_value(["window", "sink_window"]).run()
    at.number_input(key="fr_param.sink_window.sinks").set_value(2).run()
    at.selectbox(key="fr_y").set_value("top1").run()
    at.switch_page("pages/methods.py").run()
    assert not at.exception
    at.switch_page("pages/frontier.py").run()
    assert not at.exception and not at.error
    assert at.multiselect(key="fr_policies").value == ["window", "sink_window"]
    assert at.number_input(key="fr_param.sink_window.sinks").value == 2
    assert at.selectbox(key="fr_y").value == "top1"
    assert set(table(at)["policy"]) == {"window", "sink_window"}


@pytest.fixture
def budget_passes(monkeypatch):
    """Every budget the page sends to the model, one list per pass (ui.cached.budget_pass wrapped)."""
    calls: list[list[str]] = []
    real = ui.cached.budget_pass

    def counting(lm, ref, budgets, *args, **kwargs):
        calls.append([b.label for b in budgets])
        return real(lm, ref, budgets, *args, **kwargs)

    monkeypatch.setattr(ui.cached, "budget_pass", counting)
    return calls


def test_removing_a_policy_runs_no_model_pass_and_adding_one_runs_only_its_budgets(budget_passes):
    text = "A fresh text for counting passes: the dog barked at the moon all night."  # swept by no other test
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"text": text, "fr_policies": "window,h2o"})
    at.switch_page("pages/frontier.py").run()
    assert not at.exception and not at.error
    swept = [label for call in budget_passes for label in call]
    assert sorted(swept) == sorted(table(at)["budget"])
    budget_passes.clear()
    at.multiselect(key="fr_policies").set_value(["window"]).run()
    assert budget_passes == []  # removing a policy: no model pass
    assert set(table(at)["policy"]) == {"window"}
    at.multiselect(key="fr_policies").set_value(["window", "random"]).run()
    swept = [label for call in budget_passes for label in call]
    assert swept and all(label.startswith("random ") for label in swept)  # only the new policy's budgets
    assert set(table(at)["policy"]) == {"window", "random"}
    budget_passes.clear()
    at.multiselect(key="fr_policies").set_value(["h2o", "window", "random"]).run()
    assert budget_passes == []  # h2o's budgets were kept from the first sweep


@pytest.mark.slow
def test_removing_a_policy_at_256_tokens_redraws_without_the_model(budget_passes):
    """The shipped prose at the default cap (256 tokens), all six policies; then one fewer. Prints the redraw time."""
    at = AppTest.from_file(APP, default_timeout=900)
    at.query_params.update({"ex": "long", "cap": "256"})
    at.switch_page("pages/frontier.py").run()
    assert not at.exception and not at.error
    assert len(set(table(at)["policy"])) == 6
    budget_passes.clear()
    at.multiselect(key="fr_policies").set_value(["topk", "topp", "window", "sink_window", "h2o"])
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    print(f"redraw after removing a policy at 256 tokens: {seconds:.2f} s")
    assert not at.exception and not at.error
    assert budget_passes == []
    assert "random" not in set(table(at)["policy"])
    assert seconds <= 1.5
