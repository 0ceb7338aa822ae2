"""Start page ("Attention in one minute"), run headless with Streamlit's AppTest on the bundled SmolLM2."""

from streamlit.testing.v1 import AppTest

from .apptest import TEXT, metrics, run_page


def open_page(**params) -> AppTest:
    return run_page("start", **params)


def pct(value: str) -> float:
    return float(value.rstrip("%"))


def test_start_page_draws_its_widgets_and_numbers():
    at = open_page()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Attention in one minute"
    for key in ("model", "example"):
        assert at.selectbox(key=key)
    assert at.text_area(key="text").value == TEXT
    assert at.slider(key="max_tokens").value == 256
    assert at.slider(key="start_k").value == 8
    assert set(metrics(at)) == {"Quality kept", "Attention compute saved"}
    assert all(v.endswith("%") for v in metrics(at).values())
    assert at.get("plotly_chart"), "the attention heatmap is missing"
    assert "11 tokens" in at.caption[0].value
    assert any("Each word keeps" in c.value for c in at.caption)


def test_moving_the_budget_slider_changes_the_numbers():
    at = open_page()
    before = metrics(at)
    at.slider(key="start_k").set_value(2).run()
    assert not at.exception
    tight = metrics(at)
    assert tight != before
    assert pct(tight["Attention compute saved"]) > pct(before["Attention compute saved"])
    assert pct(tight["Quality kept"]) < pct(before["Quality kept"])
    assert at.query_params["start_k"] == "2"
    at.slider(key="start_k").set_value(11).run()  # every word keeps every earlier word: full attention
    assert metrics(at)["Quality kept"] == "100.0%"
    assert any("Each word keeps 100.0% of its links" in c.value for c in at.caption)


def test_url_reproduces_the_view():
    moved = open_page()
    moved.slider(key="start_k").set_value(3).run()
    linked = open_page(start_k=3)
    assert not linked.exception
    assert linked.slider(key="start_k").value == 3
    assert metrics(linked) == metrics(moved)


def test_empty_text_shows_an_error_not_a_traceback():
    at = open_page()
    at.text_area(key="text").set_value("").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)
    assert not at.metric


def test_an_encoder_falls_back_to_smollm2_with_a_note():
    at = open_page(model="minilm")
    assert not at.exception
    assert any("SmolLM2 is used" in i.value for i in at.info)
    assert "SmolLM2" in at.caption[0].value
    assert at.metric
