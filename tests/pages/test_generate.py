"""'Generate text' page, run headless with Streamlit's AppTest; a few new tokens only (decoding is slow on CPU)."""

from streamlit.testing.v1 import AppTest

from .apptest import run_page

NEW = 4  # new tokens per continuation


def open_page(**params) -> AppTest:
    return run_page("generate", **{"gen_new": NEW, **params})


def kv_metrics(at: AppTest) -> list[str]:
    return [m.value for m in at.metric if m.label.startswith("KV cache")]


def test_generate_page_draws_both_continuations():
    at = open_page()
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Generate text under a budget"
    assert at.selectbox(key="gen_policy").value == "sink_window"
    assert at.slider(key="gen_k").value == 32
    assert at.slider(key="gen_new").value == NEW
    assert at.number_input(key="gen_param.sink_window.sinks").value == 4
    assert [m.value for m in at.markdown if m.value.startswith("#####")] == ["##### Full attention",
                                                                              "##### sink_window K=32 S=4"]
    assert len(kv_metrics(at)) == 2
    assert kv_metrics(at)[0] == kv_metrics(at)[1]  # K=32 > 15 tokens: nothing evicted yet
    assert [m.delta for m in at.metric if m.label.startswith("KV cache")][1] == "same as full"
    assert at.success or at.warning  # says whether and where the continuations differ
    assert "prompt: 11 tokens" in " ".join(c.value for c in at.caption)


def test_a_smaller_cache_changes_the_numbers():
    at = open_page()
    before = kv_metrics(at)
    at.slider(key="gen_k").set_value(8).run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    after = kv_metrics(at)
    assert after[0] == before[0]  # full attention is unchanged
    assert after[1] != before[1]  # the budgeted cache holds 8 tokens, not all 15
    kv = [m for m in at.metric if m.label.startswith("KV cache")]
    assert all(m.label.endswith("(counted)") for m in kv)
    assert not kv[0].delta
    assert kv[1].delta == "-43% vs full"  # 8 cached keys against 14 (11 prompt + 3 new when the 4th is predicted)
    assert at.query_params["gen_k"] == "8"


def test_url_reproduces_the_view():
    at = open_page(gen_policy="window", gen_k=6)
    assert not at.exception
    assert not at.error
    assert at.selectbox(key="gen_policy").value == "window"
    assert at.slider(key="gen_k").value == 6
    assert not at.number_input  # sinks only for sink_window
    assert "##### window K=6" in [m.value for m in at.markdown]


def test_a_cache_no_bigger_than_the_sinks_says_why():
    at = open_page(gen_k=4)  # sink_window with K=4 <= S=4
    assert not at.exception
    assert any("needs more keys than sinks" in e.value for e in at.error)
    assert not at.metric


def test_top_p_uses_a_mass_slider():
    at = open_page(gen_policy="topp")
    assert not at.exception
    assert not at.error
    assert at.slider(key="gen_p").value == 0.9
    assert "gen_k" not in at.query_params


def test_empty_text_shows_an_error_not_a_traceback():
    at = open_page()
    at.text_area(key="text").set_value("").run()
    assert not at.exception
    assert any("empty" in e.value for e in at.error)
    assert not at.metric


def test_a_plugin_policy_generates_with_its_parameter(every_other):
    at = open_page(gen_policy="every_other", gen_k=8, **{"gen_param.every_other.phase": 1})
    assert not at.exception and not at.error
    assert at.number_input(key="gen_param.every_other.phase").value == 1
    assert any("every_other K=8 phase=1" in m.value for m in at.markdown)
