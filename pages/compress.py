"""Compress the cache: a press (as in NVIDIA kvpress) compresses the context's KV cache; see what it kept and what
it costs the rest of the text."""

import streamlit as st

from attnviz import hosting
from attnviz.budget import Budget, BudgetError
from attnviz.figures import changed_predictions_html, continuation_html, kept_map, press_frontier_plot
from attnviz.generate import first_divergence
from attnviz.inspection.tokens import describe_tokens, token_labels
from attnviz.measure.frontier import frontier_rows
from attnviz.measure.press import policy_press_pass, press_pass
from attnviz.presses import PRESSES, kept_count
from ui.cached import SHARED_LAYER, get_press_row, get_pressed_continuation
from ui.params import PRESS, drop_other_params, press_controls
from ui.show import attempt, flow_row, live_area, load_analysis, pct, si, token_legend
from ui.state import is_kept, link_param, page_param, remember, set_value, shared_controls, sync_url

controls = shared_controls(causal_only=True)
st.title("Compress the cache")
st.markdown(
    "A long prompt is read once; its **KV cache** (every token's keys and values, in every layer) is then "
    "compressed by a **press**, and everything after it is read from what is left. Here the text's first "
    "*C* tokens are the **context**, read with full attention and then pressed; the rest is the **continuation**, "
    "read from the pressed cache and compared with the full model's reading of it. The presses are "
    "[NVIDIA kvpress](https://github.com/NVIDIA/kvpress)'s, rebuilt here per call; the *compression ratio* is "
    "the share of the context's positions **removed** (kvpress's meaning), per layer and KV head."
)

PRESS_NAMES = list(PRESSES)
RATIO_RANGE = (0.0, 0.95)
NEW_RANGE = (1, 60)
# A public server continues at most HOSTED_NEW_TOKENS tokens and presses at most HOSTED_CONTEXT_TOKENS of context.
NEW_RANGE = (NEW_RANGE[0], hosting.cap(NEW_RANGE[1], hosting.HOSTED_NEW_TOKENS, "new tokens")[0])
NEW_DEFAULT = min(20, NEW_RANGE[1])
FRONTIER_PRESSES = ("streaming_llm", "snapkv", "tova", "knorm", "expected_attention", "pyramidkv")
FRONTIER_POLICIES = ("window", "sink_window", "h2o")
FRONTIER_RATIOS = (0.25, 0.5, 0.75, 0.875, 0.95)


def _bool(raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ValueError(raw)


# kvpress's own press (NVIDIA's); it needs only 5 context tokens, where SnapKV's 64-query window needs 65.
link_param("cp_press", "expected_attention", str, PRESS_NAMES.__contains__, "one of " + ", ".join(PRESS_NAMES))
link_param("cp_ratio", 0.5, float, lambda r: RATIO_RANGE[0] <= r <= RATIO_RANGE[1], "{}–{}".format(*RATIO_RANGE))
link_param("cp_new", NEW_DEFAULT, int, lambda k: NEW_RANGE[0] <= k <= NEW_RANGE[1], "{}–{}".format(*NEW_RANGE))
link_param("cp_gen", True, _bool, lambda b: True, "true or false")

analysis = load_analysis(controls, layer=SHARED_LAYER)  # the start page's reference: its keys and queries
lm = analysis.ref.lm if analysis is not None else None
if lm is not None and not lm.causal:
    st.error("Pressing a KV cache needs a left-to-right language model; this one is an encoder, which has no KV "
             "cache. Choose SmolLM2 in the sidebar.")
elif analysis is not None:
    ref = analysis.ref
    n = ref.n_tokens
    tok = lm.tokenizer
    c_max, cut = hosting.cap(n - 1, hosting.HOSTED_CONTEXT_TOKENS, "tokens of context")
    if cut:
        st.info(cut, icon="✂️")
    default_c = max(1, min(c_max, round(2 * n / 3)))
    # The context's range depends on the text: a link's (or an earlier text's) value outside it is clamped here.
    if not is_kept("cp_context") and "cp_context" in st.query_params:
        raw = st.query_params["cp_context"]
        try:
            ok = 1 <= int(raw) <= c_max
        except ValueError:
            ok = False
        if not ok:
            st.warning(f"The link's cp_context={raw} does not fit this text of {n} tokens (1–{c_max}); "
                       f"using {default_c} instead.")
            set_value("cp_context", default_c)
    page_param("cp_context", default_c, int)
    if not 1 <= st.session_state["cp_context"] <= c_max:
        set_value("cp_context", default_c)
        page_param("cp_context", default_c, int)

    a, b, c = st.columns([2, 1, 2])
    if c_max > 1:
        a.slider("Context length C (tokens read, then pressed)", 1, c_max, key="cp_context", on_change=remember,
                 args=("cp_context",), help=f"The text has {n} tokens: the first C are the context, the other "
                 "n − C the continuation read from the pressed cache.")
    context = int(st.session_state["cp_context"])
    b.selectbox("Press", PRESS_NAMES, key="cp_press", on_change=remember, args=("cp_press",),
                help="; ".join(f"{k}: {v.summary}" for k, v in PRESSES.items()))
    c.slider("Compression ratio r (share removed)", *RATIO_RANGE, step=0.05, key="cp_ratio", on_change=remember,
             args=("cp_ratio",), help="kvpress's compression_ratio: each layer and KV head keeps max(1, ⌊C·(1 − r)⌋) "
             "of the context's positions (head-wise presses such as adakv: that many on average).")
    name = st.session_state["cp_press"]
    ratio = round(float(st.session_state["cp_ratio"]), 4)  # the slider's float steps: 0.5, not 0.5000000001
    cls = PRESSES[name]
    st.caption(f"**{name}** (kvpress {cls.kvpress_class or 'none'}): {cls.summary}")
    drop_other_params("cp_", [cls], group=PRESS)
    params = cls.parameters()
    # At most three a row: five toggles and boxes side by side cut their labels at 1024 px.
    columns = list(st.columns(min(3, max(2, len(params))))) if params else []
    press = press_controls(cls, prefix="cp_", columns=columns) if params else cls()
    sync_url(cp_context=context, cp_press=name, cp_ratio=ratio)

    def press_view():
        """The press's numbers, map and continuation; returns its row (None after the one-line error)."""
        row = attempt(lambda: get_press_row(controls.model, controls.text, controls.max_tokens, context, press,
                                            ratio), "Compressing the cache")
        if row is None:
            return None
        q = row.quality
        with flow_row():
            st.metric("KL to full (measured)", f"{q.kl:.4f} nats", width="stretch",
                      help="Measured: KL(full ‖ pressed) of the next-token distributions over the continuation's "
                      f"{n - context} predictions (positions C−1 … n−2); 0 = identical.")
            st.metric("Top-1 agreement (measured)", pct(q.top1), width="stretch",
                      help="Measured: share of those predictions where the pressed model's most likely next "
                      "token is the full model's.")
            st.metric("Perplexity (measured)", f"{q.ppl:.2f}", f"{q.ppl - q.ppl_full:+.2f} vs full {q.ppl_full:.2f}",
                      delta_color="inverse", width="stretch",
                      help="Measured on the continuation's tokens, the full model's over the same tokens beside it.")
            st.metric("KV cache (counted)", si(row.kv_bytes, "B"),
                      f"{pct(row.kv_bytes / row.kv_bytes_full)} of full {si(row.kv_bytes_full, 'B')}",
                      delta_color="off", delta_arrow="off", width="stretch",  # a share, not a change: no arrow
                      help="Counted at the last token: (kept context positions + continuation tokens) × 2 (keys "
                      "and values) × head size × 4 bytes, summed over layers and KV heads.")
            st.metric("Context kept (counted)", f"{row.kept:.0f} of {context}", width="stretch",
                      help="Mean context positions kept per layer and KV head: max(1, ⌊C·(1 − r)⌋) = "
                      f"{kept_count(context, ratio)} at r = {ratio:g}.")
        labels = analysis.labels
        st.plotly_chart(kept_map(row.kept_mask.numpy(), labels[:context], head_wise=cls.head_wise,
                                 subtitle=f"{press.name} r={ratio:g}"), width="stretch")
        if row.top1 is not None:
            full_top = ref.top1[context - 1:].tolist()
            pressed_top = row.top1.tolist()
            changed = [x != y for x, y in zip(full_top, pressed_top, strict=True)] + [None]
            st.markdown(f"##### The continuation: where the pressed model's prediction changed "
                        f"({sum(map(bool, changed))} of {len(changed) - 1})")
            st.caption("The context's last token and the continuation, read from the pressed cache (teacher-forced: "
                       "every prediction is made from the real text before it). A highlighted token is followed by "
                       "a different prediction than with the full cache; hover to compare.")
            st.html(changed_predictions_html(labels[context - 1:], changed, token_labels(tok, full_top) + [None],
                                             token_labels(tok, pressed_top) + [None], other="press",
                                             other_model="the pressed model"))
            token_legend()
        return row

    with live_area():
        pressed_row = press_view()

    st.markdown("### Continue the text from the compressed cache")
    left_c, right_c = st.columns([1, 2])
    left_c.toggle("Generate", key="cp_gen", on_change=remember, args=("cp_gen",),
                  help="Greedy decoding of new tokens after the context, with the full cache and with the pressed "
                  "one, side by side.")
    right_c.slider("New tokens", *NEW_RANGE, key="cp_new", on_change=remember, args=("cp_new",),
                   help=f"This public server continues at most {NEW_RANGE[1]} tokens." if hosting.is_hosted() else None)
    new_tokens = int(st.session_state["cp_new"])
    sync_url(cp_new=new_tokens if new_tokens != NEW_DEFAULT else None,
             cp_gen=None if st.session_state["cp_gen"] else "false")
    if st.session_state["cp_gen"] and pressed_row is None:
        st.caption("Nothing to continue from: this press could not compress this context (the line above says why).")
    elif st.session_state["cp_gen"]:
        st.caption("The model continues the first C tokens one token at a time (always its most likely next token), "
                   "from the full cache and from the cache the press left; each new token attends to the kept "
                   "context positions and the new tokens before it. The first difference is outlined in red.")
        with st.spinner("Generating from the full and from the pressed cache…"):
            pair = attempt(lambda: (
                get_pressed_continuation(controls.model, controls.text, controls.max_tokens, context, None, 0.0,
                                         new_tokens),
                get_pressed_continuation(controls.model, controls.text, controls.max_tokens, context, press, ratio,
                                         new_tokens)), "Generating")
        if pair:
            full, pressed = pair
            diverge = first_divergence(full.new_ids, pressed.new_ids)
            with flow_row(min_px=300, key="cp_gen_row"):
                for gen, title in ((full, "Full cache"), (pressed, f"Pressed: {press.name} r={ratio:g}")):
                    with st.container():
                        st.markdown(f"##### {title}")
                        st.html(continuation_html([i.text for i in describe_tokens(tok, gen.new_ids)], diverge))
                        st.caption(f"KV cache at the last new token: {si(gen.kv_bytes[-1], 'B')} (counted) · "
                                   f"{gen.seconds:.2f} s measured (a masked simulation on CPU: pressing saves "
                                   "memory, not time, here)")
            if diverge is None:
                st.success("The two continuations agree token for token.")
            else:
                st.warning(f"The continuations first differ at new token {diverge + 1} (outlined in red).")

    st.markdown("### Which press is worth it?")
    st.markdown(
        f"Quality against KV cache for {len(FRONTIER_PRESSES)} presses (each at its default parameters, the one "
        f"chosen above at yours) at ratios {', '.join(f'{r:g}' for r in FRONTIER_RATIOS)}, and the project's "
        "evicting policies (dotted; they read the whole text evicting as they go, with the same number of keys "
        "as the press keeps). A point is **efficient** (ringed) when no other point has both a smaller cache and a "
        "lower KL. Quality is measured; the cache is counted."
    )
    key = (controls.model, controls.text, controls.max_tokens, context, repr(press))
    st.button("Compute the frontier", help=f"About {len(FRONTIER_PRESSES) * len(FRONTIER_RATIOS)} press runs and "
              f"{len(FRONTIER_POLICIES) * len(FRONTIER_RATIOS)} policy runs on {n} tokens.", key="cp_frontier_go",
              on_click=st.session_state.__setitem__, args=("cp_frontier_asked", True))
    # Asked through the callback: the button's own return value came back False in AppTest's click run.
    clicked = st.session_state.pop("cp_frontier_asked", False)
    if clicked:
        st.session_state["cp_frontier"] = None
        chosen = {p: (press if p == name else PRESSES[p]()) for p in dict.fromkeys([*FRONTIER_PRESSES, name])}
        skipped = []
        for p, pr in list(chosen.items()):
            try:
                pr.validate(context)
            except BudgetError as exc:
                skipped.append(str(exc))
                del chosen[p]
        runs = [(pr, r) for pr in chosen.values() for r in FRONTIER_RATIOS]
        budgets = []
        for pol in FRONTIER_POLICIES:
            for k in dict.fromkeys(kept_count(context, r) for r in FRONTIER_RATIOS):
                try:  # a size a policy refuses (sink_window with K <= its sinks) is left out, in one line
                    budget = Budget(pol, keys=k)
                    budget.policy.validate(budget, causal=True)
                    budgets.append(budget)
                except BudgetError as exc:
                    skipped.append(str(exc))
        total = len(runs) + len(budgets)
        bar = st.progress(0.0, text="Pressing…")

        def progress(offset: int, share: int):
            def report(done: int, of: int) -> None:
                bar.progress(min(1.0, (offset + share * done / of) / total),
                             text=f"Pressing and reading… {offset + round(share * done / of)}/{total} runs")
            return report

        def sweep():
            rows = press_pass(lm, ref, context, runs, progress(0, len(runs))) if runs else []
            if budgets:
                rows += policy_press_pass(lm, ref, context, budgets, progress(len(runs), len(budgets)))
            return rows

        rows = attempt(sweep, "The frontier")
        bar.empty()
        if rows:
            st.session_state["cp_frontier"] = (key, [
                {"policy": r.press.name if r.press is not None else r.budget.name, "label": r.label,
                 "kept": r.kept, **r.to_json()} for r in rows], skipped)
    stored = st.session_state.get("cp_frontier")
    if stored and stored[0] == key:
        _, rows, skipped = stored
        for line in skipped:
            st.caption(f"Left out: {line}.")
        points = frontier_rows(rows, x="kv_bytes", y="kl")
        for point, row in zip(points, rows, strict=True):
            point["label"] = row["label"]
        st.plotly_chart(press_frontier_plot(points, policies=FRONTIER_POLICIES), width="stretch")
        table = [{"run": r["label"], "kept": r["kept"], "kl": r["quality"]["kl"], "top1": r["quality"]["top1"],
                  "ppl": r["quality"]["ppl"], "kv_bytes": r["compute"]["kv_bytes"], "efficient": p["efficient"]}
                 for r, p in zip(rows, points, strict=True)]
        num = st.column_config.NumberColumn
        st.dataframe(table, width="stretch", hide_index=True, column_config={
            "run": st.column_config.TextColumn("Press or policy"),
            "kept": num("Context kept (counted)", format="%.1f",
                        help="Mean context positions kept per layer and KV head (a policy: its cache size)."),
            "kl": num("KL (measured)", format="%.4f"), "top1": num("Top-1 (measured)", format="percent"),
            "ppl": num("Perplexity (measured)", format="%.2f"),
            "kv_bytes": num("KV cache (counted)", format="compact"),
            "efficient": st.column_config.CheckboxColumn("Efficient")})
        st.caption(f"Full cache: {si(rows[0]['compute']['kv_bytes_full'], 'B')} (counted); full perplexity on the "
                   f"continuation {rows[0]['quality']['ppl_full']:.2f} (measured).")
    elif stored:
        st.caption("The frontier shown before was for other settings: compute it again for these.")
