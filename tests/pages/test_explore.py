"""Explore page, run headless with Streamlit's AppTest on the bundled models (short texts keep reruns fast)."""

import json

from streamlit.testing.v1 import AppTest

from .apptest import run_page

VIEWS = {
    "head": "🔎 One head",
    "lines": "🧵 Token lines",
    "layer": "🧩 Heads of a layer",
    "model": "🗺️ All layers",
    "combine": "➕ Combine heads and layers",
    "stats": "📊 Head statistics",
}


def open_page(**params) -> AppTest:
    return run_page("explore", **params)


def show(at: AppTest, view: str) -> AppTest:
    """Open a tab (what a click does: the page keeps the choice under its kept key)."""
    at.session_state["_keep_explore_view"] = VIEWS[view]
    return at.run()


def titles(at: AppTest) -> list[str]:
    return [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]


def test_default_view_shows_one_head_with_its_controls():
    at = open_page()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Explore attention"
    assert at.slider(key="explore_layer").value == 15
    assert at.slider(key="explore_head").value == 3
    assert at.toggle(key="explore_cap").value is True
    assert [t.label for t in at.tabs] == list(VIEWS.values())
    assert "11 tokens" in at.caption[0].value and "SmolLM2" in at.caption[0].value  # which weights ran
    assert titles(at) == ["Layer 15, head 3: who looks at whom"]


def test_changing_layer_and_head_changes_the_heatmap_and_the_url():
    at = open_page()
    at.slider(key="explore_layer").set_value(2).run()
    assert not at.exception
    assert titles(at) == ["Layer 2, head 3: who looks at whom"]
    before = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["z"]
    at.slider(key="explore_head").set_value(7).run()
    assert titles(at) == ["Layer 2, head 7: who looks at whom"]
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["z"] != before
    assert at.query_params["explore_layer"] == "2" and at.query_params["explore_head"] == "7"
    at.toggle(key="explore_cap").set_value(False).run()
    assert at.query_params["explore_cap"] == "0"
    linked = open_page(explore_layer=2, explore_head=7, explore_cap=0)
    assert linked.slider(key="explore_layer").value == 2 and linked.toggle(key="explore_cap").value is False
    assert titles(linked) == titles(at)


def test_every_view_draws_without_errors():
    at = open_page()
    for view in VIEWS:
        show(at, view)
        assert not at.exception, view
        assert not at.error, view
        assert titles(at), view
    assert at.query_params["explore_view"] == "stats"


def test_token_lines_follow_the_selected_tokens_and_round_trip():
    at = show(open_page(), "lines")
    tokens = at.multiselect(key="explore_tokens")
    assert tokens.value == [9]  # the last word, "tired"
    assert "where the selected tokens look" in titles(at)[0]
    at.multiselect(key="explore_tokens").set_value([2, 5]).run()
    assert not at.exception
    assert at.query_params["explore_tokens"] == "2,5"
    linked = open_page(explore_view="lines", explore_tokens="2,5,999")  # 999: past the end, dropped
    assert not linked.exception
    assert linked.multiselect(key="explore_tokens").value == [2, 5]


def test_long_texts_show_a_window_of_token_lines():
    long_text = " ".join(["the cat sat on the mat"] * 40)  # 240 tokens
    at = open_page(text=long_text, explore_view="lines", explore_tokens="200")
    assert not at.exception
    assert "tokens #101–#200 of 240" in titles(at)[0]
    assert any("only 100 stay readable" in i.value for i in at.info)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "#200" in spec["layout"]["yaxis"]["ticktext"]  # positions in the whole text, not in the window


def test_combine_views_mean_max_and_rollout():
    at = show(open_page(), "combine")
    assert titles(at) == ["Layer 15: mean of its 9 heads"]
    at.radio(key="explore_agg").set_value("max").run()
    assert titles(at) == ["Layer 15: max over its 9 heads"]
    at.radio(key="explore_agg").set_value("rollout").run()
    assert not at.exception
    assert titles(at) == ["Attention rollout through layers 1–15"]
    assert at.query_params["explore_agg"] == "rollout"


def test_head_statistics_table_is_sortable_data():
    at = show(open_page(), "stats")
    table = at.dataframe[0].value
    assert list(table.columns) == ["layer", "head", "entropy", "first token", "top-3 mass"]
    assert len(table) == 30 * 9
    assert table.iloc[0][["layer", "head"]].tolist() == [1, 1]
    assert table["first token"].between(0, 1).all() and (table["entropy"] >= 0).all()
    at.radio(key="explore_stat").set_value("top3_mass").run()
    assert titles(at)[0].startswith("Mass in the top 3 keys")


def test_heads_of_a_layer_table_follows_the_layer():
    at = show(open_page(), "layer")
    assert len(at.dataframe[0].value) == 9
    first = at.dataframe[0].value.iloc[0].tolist()
    at.slider(key="explore_layer").set_value(1).run()
    assert not at.exception
    assert at.dataframe[0].value.iloc[0].tolist() != first
    assert titles(at)[0].startswith("Layer 1: every head<br>")


def test_minilm_encoder_works():
    at = open_page()
    at.selectbox(key="model").set_value("minilm").run()
    assert not at.exception
    assert not at.error
    assert "MiniLM" in at.caption[0].value
    assert at.slider(key="explore_layer").value == 6  # 15 clamped to MiniLM's 6 layers
    assert titles(at) == ["Layer 6, head 3: who looks at whom"]
    show(at, "model")
    assert not at.exception
    assert "All 72 heads" in titles(at)[0]


def test_empty_text_shows_an_error_not_a_traceback():
    at = open_page()
    at.text_area(key="text").set_value("").run()
    assert not at.exception
    assert at.error
    assert at.title[0].value == "Explore attention"  # the rest of the page still renders


def test_the_token_legend_explains_how_tokens_are_written():
    """Every view labels rows and columns with tokens (␣the, 注(1/2)): one line says how to read them."""
    from attnviz.inspection.tokens import TOKEN_LEGEND

    at = open_page()
    assert TOKEN_LEGEND in [c.value for c in at.caption]
    at = show(at, "lines")
    assert not at.exception
    assert TOKEN_LEGEND in [c.value for c in at.caption]


def test_every_control_round_trips_through_the_link():
    """The view, layer, head, colour toggle, combination, statistic and followed tokens open at the link's values,
    and moving each through its widget writes the new value back to the link."""
    at = open_page(explore_view="combine", explore_layer=4, explore_head=2, explore_cap=0, explore_agg="max",
                   explore_stat="sink_share", explore_tokens="2,5")
    assert not at.exception and not at.error
    assert at.session_state["explore_view"] == VIEWS["combine"]
    assert at.slider(key="explore_layer").value == 4
    assert at.slider(key="explore_head").value == 2
    assert at.toggle(key="explore_cap").value is False
    assert at.radio(key="explore_agg").value == "max"
    assert titles(at) == ["Layer 4: max over its 9 heads"]
    show(at, "stats")
    assert not at.exception and not at.error
    assert at.radio(key="explore_stat").value == "sink_share"
    assert at.query_params["explore_view"] == "stats"
    show(at, "lines")
    assert not at.exception and not at.error
    assert at.multiselect(key="explore_tokens").value == [2, 5]

    at.slider(key="explore_layer").set_value(6).run()
    at.slider(key="explore_head").set_value(8).run()
    at.toggle(key="explore_cap").set_value(True).run()
    at.multiselect(key="explore_tokens").set_value([3]).run()
    show(at, "combine")
    at.radio(key="explore_agg").set_value("rollout").run()
    show(at, "stats")
    at.radio(key="explore_stat").set_value("top3_mass").run()
    assert not at.exception and not at.error
    assert {k: at.query_params.get(k) for k in ("explore_view", "explore_layer", "explore_head", "explore_cap",
                                                 "explore_agg", "explore_stat", "explore_tokens")} == {
        "explore_view": "stats", "explore_layer": "6", "explore_head": "8", "explore_cap": None,
        "explore_agg": "rollout", "explore_stat": "top3_mass", "explore_tokens": "3"}
