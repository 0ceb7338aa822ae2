"""Quality vs compute: sweep budgets for several policies and find the efficient ones."""

import csv
import io
import json
from dataclasses import replace

import streamlit as st

from attnviz import hosting
from attnviz.figures import attention_share_plot, frontier_plot
from attnviz.measure.frontier import frontier_rows
from attnviz.measure.scaling import KNOWN_CONFIGS, config_from_model, share_curves
from attnviz.policies import POLICIES
from ui.cached import SHARED_LAYER, swept_rows
from ui.params import drop_other_params, policy_controls
from ui.show import attempt, load_analysis, si
from ui.state import is_kept, page_param, persistent, remember, shared_controls, sync_url

controls = shared_controls()
st.title("Quality vs compute")
st.markdown(
    "Each point is one rerun of the model with one budget. Left is cheaper; the quality axis says which way is "
    "better (lower KL and perplexity, higher agreement). A point is **efficient** (outlined, joined by the "
    "dashed line) when no other point, of any policy, is both at least as cheap and at least as good on the "
    "chosen axes. Quality is measured; compute is counted."
)

# Attention FLOPs first (the default): it charges each policy for every score it computes, so an oracle that must
# score every pair to choose its keys cannot look cheap. Density (kept links) would crown the oracles.
X_AXES = {"attn_flops": "attention FLOPs, scoring included (counted)",
          "kv_bytes": "KV cache bytes at the end (counted)",
          "density": "density: kept links, not work saved"}
X_HELP = ("Attention FLOPs = 2·d·(pairs scored) + 2·d·(pairs kept): an oracle (topk, topp) scores every pair "
          "before choosing, so it never goes below half of full attention. KV cache bytes: only window, "
          "sink_window and h2o drop keys for good; the others keep the whole cache. Density = kept / allowed "
          "pairs: which links are kept, not the work saved (an oracle scores every pair and keeps the whole "
          "cache whatever its density). Formulas on the Methods page.")
EFFICIENT_MEANS = {
    "attn_flops": "**Efficient** on attention FLOPs: no other point is at least as good for at most the same "
                  "counted work, scoring included. An oracle (topk, topp; dotted) pays for scoring every pair, so "
                  "it saves at most the value half (choosing among each row's scores is not counted) and keeps the "
                  "whole KV cache: a ring on it near full quality is a saving of value mixing only.",
    "kv_bytes": "**Efficient** on KV cache bytes: no other point is at least as good with at most the same cache. "
                "Only window, sink_window and h2o shrink the cache; topk, topp and random keep all of it, so they "
                "sit at the full cache's size and can be efficient there only as the best quality at no saving.",
    "density": "**Efficient** on density: no other point is at least as good with at most as many kept links. "
               "Density counts kept links, not work saved: an oracle (topk, topp) keeps few links but must score "
               "every pair and keep the whole cache, so a ring here says which links matter, not what to deploy.",
}
Y_AXES = {"kl": "KL divergence to full (nats, lower is better)", "top1": "top-1 agreement (higher is better)",
          "ppl": "perplexity (lower is better)", "cos_embedding": "embedding cosine (encoders; higher is better)",
          "mass_kept": "attention mass kept (higher is better)"}
ALL = [name for name, cls in POLICIES.items() if not cls.reference]
_num = st.column_config.NumberColumn


def policy_names(text: str) -> list[str]:
    """The policies a link names, e.g. ``window,h2o`` (empty: none)."""
    return list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))


# How the table shows each result key (the CSV and JSON keep the keys and raw numbers). Columns not named here
# (the full run's values, the same on every row) are left out of the table and said once under it.
TABLE_COLUMNS = {
    "budget": st.column_config.TextColumn("Budget", help="The policy and its size (the policy alone is the "
                                          "'policy' column of the downloads)."),
    "density": _num("Density", format="percent", help="Counted: kept / allowed query–key pairs: kept links, "
                    "not work saved (an oracle scores every pair whatever it keeps)."),
    "kl": _num("KL (nats)", format="%.4f", help="Measured: KL divergence from the full model's next-word "
               "distribution, averaged over positions. 0 = identical."),
    "top1": _num("Top-1 agreement", format="percent", help="Measured: share of positions where the budgeted "
                 "model predicts the same next word."),
    "ppl": _num("Perplexity", format="%.2f", help="Measured on this text (lower is better)."),
    "mass_kept": _num("Attention mass kept", format="percent", help="Measured: share of the full softmax weight "
                      "that falls on the kept keys."),
    "cos_embedding": _num("Embedding cosine", format="%.4f", help="Measured: cosine of the mean-pooled "
                          "embedding with the full model's (encoders)."),
    "cos_tokens": _num("Token cosine", format="%.4f", help="Measured: mean cosine of the last hidden states "
                       "with the full model's (encoders)."),
    "attn_pairs": _num("Pairs kept", format="localized", help="Counted: query–key pairs kept, over all layers "
                       "and heads."),
    "attn_flops": _num("Attention FLOPs", format="compact", help="Counted from the formulas on the Methods page, "
                       "scoring included: an oracle (topk, topp) pays for scoring every pair."),
    "total_flops": _num("Whole-model FLOPs", format="compact", help="Counted from the formulas on the Methods "
                        "page."),
    "kv_bytes": _num("KV cache (bytes)", format="compact", help="Counted: cached keys and values at the last "
                     "token."),
    "seconds": _num("Time (s)", format="%.3f", help="Measured: wall time of the pass that ran this budget, shared "
                    "evenly among the budgets that ran in it (a mask simulation: no faster than full attention)."),
    "efficient": st.column_config.CheckboxColumn("Efficient", help="No other point, of any policy, is both at "
                                                 "least as cheap and at least as good on the chosen axes."),
}

page_param("fr_x", "attn_flops")
page_param("fr_y", "kl")
# A public server sweeps at most HOSTED_SWEEP_TOKENS tokens (under that, the start page's reference is reused).
sweep_cap, cut = hosting.cap(controls.max_tokens, hosting.HOSTED_SWEEP_TOKENS, "tokens in a sweep")
if cut:
    st.info(cut, icon="✂️")
    controls = replace(controls, max_tokens=sweep_cap)
analysis = load_analysis(controls, layer=SHARED_LAYER)  # the start page's reference: no second forward
if analysis is not None:
    ref = analysis.ref
    lm = ref.lm
    fit = [p for p in ALL if not (POLICIES[p].causal_only and not lm.causal)]
    if not lm.causal and st.session_state["fr_y"] in ("kl", "top1", "ppl"):
        st.session_state["fr_y"] = "cos_embedding"
    a, b, c = st.columns([3, 1, 1])
    # Kept across pages and in the link (fr_policies=window,h2o); every fitting policy when neither says.
    from_link = not is_kept("fr_policies")
    persistent("fr_policies", fit, url="fr_policies", cast=policy_names)
    wanted = st.session_state["fr_policies"]
    if from_link and (unknown := [p for p in wanted if p not in fit]):
        st.warning(f"The link's policies {', '.join(unknown)} do not exist or do not fit this model; left out.")
    # A policy that does not fit this model (h2o with an encoder) stays kept for when the model changes back.
    st.session_state["fr_policies"] = [p for p in wanted if p in fit]
    chosen = a.multiselect("Policies", fit, key="fr_policies", on_change=remember, args=("fr_policies",))
    b.selectbox("Compute axis", list(X_AXES), key="fr_x", format_func=X_AXES.get, on_change=remember,
                args=("fr_x",), help=X_HELP)
    c.selectbox("Quality axis", list(Y_AXES), key="fr_y", format_func=Y_AXES.get, on_change=remember,
                args=("fr_y",))
    x_key, y_key = st.session_state["fr_x"], st.session_state["fr_y"]
    sync_url(fr_x=x_key, fr_y=y_key, fr_policies=None if chosen == fit else ",".join(chosen))
    with_params = [p for p in chosen if POLICIES[p].parameters()]
    policies = {p: POLICIES[p]() for p in chosen}
    # Parameters of policies not chosen say nothing about this view: out of the link (their values stay kept).
    drop_other_params("fr_", [POLICIES[p] for p in with_params])
    if with_params:
        with st.expander("Policy parameters", expanded=False):
            cols = st.columns(max(2, len(with_params)))
            for col, name in zip(cols, with_params, strict=False):
                col.markdown(f"`{name}`")
                policies[name] = policy_controls(POLICIES[name], prefix="fr_", columns=[col])
    budgets = [b for pol in policies.values() for b in pol.ladder(ref.n_tokens)]
    kept_budgets, cut = hosting.cap(len(budgets), hosting.HOSTED_SWEEP_BUDGETS, "budgets")
    if cut:
        st.info(f"{cut} The budgets of the last policies chosen are left out.", icon="✂️")
        budgets = budgets[:kept_budgets]
    st.caption(f"{len(budgets)} budgets on {ref.n_tokens} tokens: up to 8 sizes per policy, from about n/32 to 3n/4 "
               "keys (top-p: masses 0.5 to 0.999); on short texts some sizes coincide.")

    def sweep(progress) -> list[dict]:
        return swept_rows(controls.model, controls.text, controls.max_tokens, ref, budgets, progress)

    def sweep_results(x_key: str) -> None:
        if not chosen:
            return
        bar = st.progress(0.0, text="Sweeping budgets…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Sweeping budgets… {done}/{total} reruns of the model")

        rows = attempt(lambda: sweep(progress), "The sweep")
        bar.empty()
        if not rows:
            return
        x_axis = X_AXES[x_key]
        if x_key == "kv_bytes" and not lm.causal:
            st.info("Encoders have no KV cache; showing attention FLOPs instead.")
            x_key, x_axis = "attn_flops", X_AXES["attn_flops"]
        points = frontier_rows(rows, x=x_key, y=y_key)
        st.markdown(EFFICIENT_MEANS[x_key])
        oracles = {p for p in chosen if POLICIES[p].scores_all_pairs}
        st.plotly_chart(frontier_plot(points, x_axis, Y_AXES[y_key], log_x=x_key != "density", oracles=oracles),
                        width="stretch")
        table = [{"policy": r["policy"], "budget": r["label"], "density": r["density"],
                  **{k: v for k, v in r["quality"].items() if v is not None},
                  **r["compute"], "efficient": p["efficient"]} for r, p in zip(rows, points, strict=True)]
        st.dataframe(table, width="stretch", hide_index=True, column_config=TABLE_COLUMNS,
                     column_order=[k for k in TABLE_COLUMNS if k in table[0]])
        q0, c0 = rows[0]["quality"], rows[0]["compute"]
        counted = [f"attention FLOPs {si(c0['attn_flops_full'])}", f"whole-model FLOPs {si(c0['total_flops_full'])}"]
        if c0.get("kv_bytes_full") is not None:
            counted.append(f"KV cache {si(c0['kv_bytes_full'], 'B')}")
        measured = f"perplexity {q0['ppl_full']:.2f} (measured); " if q0.get("ppl_full") is not None else ""
        st.caption(f"Full attention on this text: {measured}{', '.join(counted)} (counted). The downloads hold "
                   "every column, these included, as raw numbers.")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
        d1, d2 = st.columns(2)
        d1.download_button("Download CSV", buf.getvalue(), "attnviz-frontier.csv", "text/csv")
        d2.download_button("Download JSON", json.dumps({"model": controls.model, "weights": lm.weights,
                                                        "n_tokens": ref.n_tokens, "rows": rows}, indent=2),
                           "attnviz-frontier.json", "application/json")

    # The sweep's results go above the scaling chart, which is drawn first: it needs no sweep, so a reader
    # has it while the sweep runs (and the browser draws it then, not after the sweep).
    results = st.container()
    st.markdown("### When does an attention budget matter?")
    st.markdown(
        "Attention's share of a forward pass grows with the text's length, because every token scores every "
        "earlier token while the rest of the model does a fixed amount of work per token. Counted with the "
        "formulas on the *Methods* page, for the loaded model and a few well-known larger ones:"
    )
    configs = {"this model" if lm.causal else "this model (as if causal)": config_from_model(lm.model)}
    curves = share_curves({**configs, **KNOWN_CONFIGS})
    st.plotly_chart(attention_share_plot(curves, marker_n=ref.n_tokens), width="stretch")
    with results:
        sweep_results(x_key)
