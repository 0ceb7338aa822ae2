"""'Compress the cache' page, run headless with Streamlit's AppTest on an 11-token text."""

import json

from tests.pages.apptest import metrics, run_page

METRICS = ["KL to full (measured)", "Top-1 agreement (measured)", "Perplexity (measured)", "KV cache (counted)",
           "Context kept (counted)"]


def kept_map_spec(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_the_page_draws_numbers_map_continuation_and_generation():
    at = run_page("compress", cp_press="knorm", cp_new=3)
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Compress the cache"
    shown = metrics(at)
    assert list(shown) == METRICS
    assert shown["Context kept (counted)"] == "3 of 7"  # C = 2/3 of 11 tokens, r = 0.5 keeps int(7 * 0.5)
    spec = kept_map_spec(at)
    assert spec["data"][0]["type"] == "heatmap" and len(spec["data"][0]["y"]) == 30  # one row per layer
    assert any("‘␣mat’" in x for x in spec["data"][0]["x"])  # tokens legible on hover
    page = " ".join(h.proto.body for h in at.get("html"))
    assert "predictions changed" in page and "press predicts" in page
    assert any("Full cache" in m.value for m in at.markdown)
    assert at.button[0].label == "Compute the frontier"


def test_a_ratio_change_changes_the_numbers_and_the_map():
    at = run_page("compress", cp_press="knorm", cp_gen="false")
    before, map_before = metrics(at), kept_map_spec(at)["data"][0]["z"]
    at.slider(key="cp_ratio").set_value(0.85).run()
    assert not at.exception and not at.error
    after, map_after = metrics(at), kept_map_spec(at)["data"][0]["z"]
    assert after["Context kept (counted)"] == "1 of 7"
    assert after["KV cache (counted)"] != before["KV cache (counted)"]
    assert map_after != map_before
    assert at.query_params["cp_ratio"] == "0.85"


def test_every_control_goes_in_the_link_and_comes_back():
    link = {"cp_context": "6", "cp_press": "snapkv", "cp_press.snapkv.window_size": "2",
            "cp_press.snapkv.kernel_size": "3", "cp_ratio": "0.3", "cp_new": "2", "cp_gen": "false"}
    at = run_page("compress", **link)
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.slider(key="cp_context").value == 6
    assert at.selectbox(key="cp_press").value == "snapkv"
    assert at.number_input(key="cp_press.snapkv.window_size").value == 2
    assert at.number_input(key="cp_press.snapkv.kernel_size").value == 3
    assert at.slider(key="cp_ratio").value == 0.3
    assert at.slider(key="cp_new").value == 2
    assert at.toggle(key="cp_gen").value is False
    assert {k: at.query_params[k] for k in link} == link
    # Changing each control writes it back to the link.
    at.slider(key="cp_context").set_value(8).run()
    at.number_input(key="cp_press.snapkv.window_size").set_value(4).run()
    at.selectbox(key="cp_press").set_value("adakv").run()
    at.selectbox(key="cp_press.adakv.scorer").set_value("knorm").run()  # snapkv's window: longer than C
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.query_params["cp_press.adakv.scorer"] == "knorm"
    assert at.query_params["cp_context"] == "8" and at.query_params["cp_press"] == "adakv"
    assert not any(k.startswith("cp_press.snapkv") for k in at.query_params)  # another press's parameters
    spec = kept_map_spec(at)
    assert spec["data"][0]["y"][:3] == ["L1 h1", "L1 h2", "L1 h3"]  # head-wise: layer × KV head


def test_bad_input_is_one_line_and_the_rest_works():
    at = run_page("compress", cp_press="snapkv", cp_new=2)  # its 64-query window needs 65 tokens of context
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Compressing the cache: press 'snapkv' needs a context of at least 65 tokens, got C=7 "
        "(longer than its window_size=64)"]
    assert not at.metric
    assert at.button[0].label == "Compute the frontier"  # the rest of the page is still there
    at = run_page("compress", cp_press="nope", cp_ratio="1.5", cp_context="99", cp_gen="false",
                  **{"cp_press.knorm.nope": "1"})
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("cp_press=nope is not allowed" in w for w in warnings)
    assert any("cp_ratio=1.5 is not allowed" in w for w in warnings)
    assert any("cp_context=99 does not fit" in w for w in warnings)
    assert not at.error and len(at.metric) == 5  # the default press, expected_attention, takes C=7
    at.selectbox(key="cp_press").set_value("knorm").run()
    assert not at.error and len(at.metric) == 5
    assert "cp_press.knorm.nope" not in at.query_params


def test_an_encoder_is_one_line():
    at = run_page("compress", model="minilm", cp_press="knorm", cp_gen="false")
    assert not at.exception and not at.error
    assert any("MiniLM is an encoder" in i.value for i in at.info)
    assert len(at.metric) == 5  # SmolLM2 instead


def test_the_frontier_runs_on_the_button_and_rings_efficient_points():
    at = run_page("compress", cp_press="knorm", cp_gen="false")
    assert not at.dataframe  # computed only on the button
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows = at.dataframe[0].value
    assert rows["efficient"].any()
    assert rows["run"].str.startswith("knorm r=").sum() == 5
    assert rows["run"].str.startswith("h2o K=").any() and rows["run"].str.startswith("window K=").any()
    assert any(c.value.startswith("Left out: press 'snapkv' needs a context") for c in at.caption)
    assert len(at.get("plotly_chart")) == 2  # the kept map and the frontier
    at.slider(key="cp_ratio").set_value(0.25).run()  # the frontier does not depend on the ratio: still shown
    assert len(at.dataframe) == 1


def test_the_start_page_links_here():
    at = run_page("start")
    assert any(link.proto.page == "compress" for link in at.get("page_link"))
    assert any("**Compress the cache**" in i.value for i in at.info)  # the Next box names it
