"""'Generate text' page, run headless with Streamlit's AppTest; a few new tokens only (decoding is slow on CPU)."""

from streamlit.testing.v1 import AppTest

from .apptest import APP, run_page

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


ALICE = "Alice gave Bob her umbrella because she knew it would rain in Paris."  # the example


def test_a_continuation_that_ends_early_is_compared_at_equal_length():
    """top-p p=0.9 ends the text after 9 tokens (end of sequence) while full attention goes on: the page says so,
    and the KV caches are compared at 9 tokens each (top-p keeps the whole cache: no saving)."""
    at = open_page(text=ALICE, gen_policy="topp", gen_new=12)
    assert not at.exception and not at.error
    said = " ".join(c.value for c in at.caption) + " ".join(m.value for m in at.markdown)
    assert "stopped after 9 tokens: the model ended the text" in said
    kv = [m for m in at.metric if m.label.startswith("KV cache")]
    assert len(kv) == 2 and kv[0].value == kv[1].value
    assert "9" in kv[0].label  # at new token 9, the shorter continuation's end
    assert kv[1].delta == "same as full"
    assert not any("%" in str(m.delta) for m in kv)  # no saving that comes from stopping early


def test_the_continuations_carry_the_token_legend():
    at = open_page()
    assert any("␣" in c.value for c in at.caption)


def _round_trip(at: AppTest) -> AppTest:
    """Open the page again from the link ``at`` now shows (a fresh session, nothing kept)."""
    fresh = AppTest.from_file(APP, default_timeout=180)
    fresh.query_params.update(dict(at.query_params))
    return fresh.switch_page("pages/generate.py").run()


def test_every_control_round_trips_through_the_link():
    at = open_page(gen_new=2)
    at.selectbox(key="gen_policy").set_value("sink_window").run()
    at.slider(key="gen_k").set_value(16).run()
    at.slider(key="gen_new").set_value(3).run()
    at.number_input(key="gen_param.sink_window.sinks").set_value(2).run()
    assert not at.exception and not at.error
    again = _round_trip(at)
    assert not again.exception and not again.error
    assert again.selectbox(key="gen_policy").value == "sink_window"
    assert again.slider(key="gen_k").value == 16
    assert again.slider(key="gen_new").value == 3
    assert again.number_input(key="gen_param.sink_window.sinks").value == 2
    assert "##### sink_window K=16 S=2" in [m.value for m in again.markdown]


def test_the_mass_of_top_p_round_trips_through_the_link():
    at = open_page(gen_policy="topp", gen_new=2)
    assert at.slider(key="gen_p").value == 0.9  # top-p's own default
    at.slider(key="gen_p").set_value(0.5).run()
    assert not at.exception and not at.error
    assert at.query_params["gen_p"] == "0.5"
    again = _round_trip(at)
    assert again.slider(key="gen_p").value == 0.5
    assert "##### topp p=0.5" in [m.value for m in again.markdown]
    assert "gen_k" not in again.query_params


def test_out_of_range_values_in_a_link_fall_back_with_a_message():
    at = open_page(gen_policy="topp", gen_p=7, gen_new=500)
    assert not at.exception
    assert at.slider(key="gen_p").value == 0.9
    assert at.slider(key="gen_new").value == 40
    assert any("gen_p" in w.value for w in at.warning) and any("gen_new" in w.value for w in at.warning)
