"""Start page ("Attention in one minute"), run headless with Streamlit's AppTest on the bundled SmolLM2."""

from streamlit.testing.v1 import AppTest

from .apptest import APP, TEXT, metrics, run_page


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
    assert set(metrics(at)) == {"Quality kept", "Attention compute saved", "Whole-model compute saved"}
    assert all(v.endswith("%") for v in metrics(at).values())
    assert at.get("plotly_chart"), "the attention heatmap is missing"
    assert "11 tokens" in at.caption[0].value
    assert any("each word keeps" in c.value for c in at.caption)
    assert any("How tokens are written" in c.value for c in at.caption)  # the token legend under the heatmap


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
    assert any("each word keeps 100.0% of its links" in c.value for c in at.caption)


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


def test_the_saving_is_shown_for_the_whole_model_and_explained():
    """31.4% of attention saved is 0.16% of the whole model at this length: both are visible, with longer
    lengths, and the gap between links kept and compute saved is explained in one visible line."""
    at = AppTest.from_file(APP, default_timeout=180).run()  # the default trophy example: 38 tokens
    assert not at.exception and not at.error
    shown = metrics(at)
    assert shown["Attention compute saved"] == "31.4%"
    assert shown["Whole-model compute saved"] == "0.16%"
    text = " ".join(m.value for m in at.markdown)
    assert "on these 38 tokens attention is only 0.5% of the model's work" in text
    assert "saves **0.16%** of everything" in text
    assert "the same K = 8 would save" in text and "at 32,768 tokens" in text
    assert "Why 37.2% of links kept but only 31.4% saved?" in text


def trophy_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if "the word *it*" in c.value)


def test_the_caption_follows_the_picture():
    """At K=8 the word "it" looks mostly at "trophy"; at K=1 the heatmap shows it on "suit" (earlier layers
    changed under the budget), and the caption must say so, and whether the prediction after "it" changed."""
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert "looks mostly at *trophy* (57% of its attention)" in trophy_caption(at)
    assert "predicted after *it* is unchanged: *was*" in trophy_caption(at)
    at.slider(key="start_k").set_value(1).run()
    assert not at.exception
    caption = trophy_caption(at)
    assert "With K = 1, the word *it* now looks mostly at *suit* (100% of its attention)" in caption
    assert "no longer at *trophy*" in caption
    assert "predicted after *it* is unchanged: *was*" in caption


def test_every_control_round_trips_through_the_link():
    """Each control opens at the link's value, and moving it through its widget writes the new value back."""
    at = open_page(start_k=3, cap=32)
    assert not at.exception and not at.error
    assert at.slider(key="start_k").value == 3
    assert at.slider(key="max_tokens").value == 32
    assert at.text_area(key="text").value == TEXT
    at.slider(key="start_k").set_value(5).run()
    at.slider(key="max_tokens").set_value(48).run()
    assert not at.exception and not at.error
    assert at.query_params["start_k"] == "5"
    assert at.query_params["cap"] == "48"
    assert at.query_params["text"] == TEXT


def test_a_hosted_server_caps_a_long_text_with_a_message(monkeypatch):
    monkeypatch.setenv("ATTNVIZ_HOSTED", "1")
    at = open_page()
    at.text_area(key="text").set_value("The lighthouse keeper climbed the stairs. " * 600).run()  # 25,200 characters
    assert not at.exception and not at.error
    assert any("first 20,000 characters" in w.value for w in at.warning)
    assert metrics(at)  # the page still works on the capped text
