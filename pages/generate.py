"""Generate: the same prompt continued with full and with budgeted attention, side by side."""


import numpy as np
import streamlit as st

from attnviz.budget import Budget
from attnviz.figures import continuation_html
from attnviz.generate import first_divergence
from attnviz.inspection.tokens import describe_tokens
from attnviz.policies import POLICIES
from ui.cached import get_continuations, get_model
from ui.params import policy_controls
from ui.show import attempt, si
from ui.state import page_param, remember, shared_controls, sync_url

controls = shared_controls(causal_only=True)
st.title("Generate text under a budget")
st.markdown(
    "The model continues your text one token at a time (always picking its most likely next token), once with "
    "full attention and once with a budget. **Evicting policies** (`window`, `sink_window`, `h2o`) really drop "
    "entries from the KV cache, so their memory stays fixed while the text grows; the other policies keep the "
    "whole cache and only ignore part of it. The first token where the two continuations differ is marked; "
    "↵ is a line break."
)

POLICY_NAMES = [name for name, cls in POLICIES.items() if not cls.reference]
page_param("gen_policy", "sink_window")
page_param("gen_k", 32, int)
page_param("gen_new", 40, int)

a, b, c, d = st.columns(4)
a.selectbox("Policy", POLICY_NAMES, key="gen_policy", on_change=remember, args=("gen_policy",))
policy = st.session_state["gen_policy"]
pol_cls = POLICIES[policy]
if pol_cls.ratio_only:
    b.slider(f"Attention mass {pol_cls.ratio_symbol}", 0.05, 1.0, pol_cls.default_ratio, 0.05, key="gen_p")
    size = {"ratio": float(st.session_state["gen_p"])}
else:
    b.slider("Keys kept (cache size for evicting policies)", 2, 256, key="gen_k", on_change=remember,
             args=("gen_k",))
    size = {"keys": int(st.session_state["gen_k"])}
c.slider("New tokens", 1, 120, key="gen_new", on_change=remember, args=("gen_new",))
# Links made before parameters had keys of their own said gen_sinks=.
pol = policy_controls(pol_cls, prefix="gen_", columns=[d], legacy={"sinks": "gen_sinks"})
sync_url(gen_policy=policy, gen_k=size.get("keys"), gen_new=st.session_state["gen_new"], gen_sinks=None)


budget = Budget(pol, keys=size.get("keys"), ratio=size.get("ratio"))
with st.spinner("Generating with full attention and with the budget, side by side…"):
    pair = attempt(lambda: get_continuations(controls.model, controls.text, budget, int(st.session_state["gen_new"]),
                                          controls.max_tokens), "Generating")
full, budgeted = pair if pair else (None, None)

if full and budgeted:
    lm = get_model(controls.model)
    tok = lm.tokenizer
    diverge = first_divergence(full.new_ids, budgeted.new_ids)
    if full.truncated_from:
        st.caption(f"The prompt was truncated from {full.truncated_from} tokens to fit the cap.")
    st.caption(f"**Model:** {lm.weights} · prompt: {len(full.prompt_ids)} tokens")
    left, right = st.columns(2)
    for col, gen, title in ((left, full, "Full attention"), (right, budgeted, budgeted.budget.label)):
        col.markdown(f"##### {title}")
        pieces = [info.text for info in describe_tokens(tok, gen.new_ids)]  # real text, so it wraps
        col.html(continuation_html(pieces, diverge))
        change = gen.kv_bytes[-1] / full.kv_bytes[-1] - 1 if gen is not full and full.kv_bytes[-1] else None
        col.metric("KV cache at the last token (counted)", si(gen.kv_bytes[-1], "B"),
                   delta=None if change is None else "same as full" if change == 0 else f"{change:+.0%} vs full",
                   delta_color="off" if change == 0 else "inverse",
                   help="Counted, when the last token was predicted: cached keys × 2 (keys and values) × head size "
                        "× 4 bytes, over layers and KV heads.")
        col.caption(f"Largest KV cache: {si(max(gen.kv_bytes), 'B')} · measured time {gen.seconds:.2f} s "
                    "(a simulation on CPU, the two continuations side by side; evicting policies save memory, "
                    "not time, here)")
    if diverge is None:
        st.success("The two continuations agree token for token.")
    else:
        st.warning(f"The continuations first differ at new token {diverge + 1} (outlined in red).")
    steps = max(len(full.kv_bytes), len(budgeted.kv_bytes))
    series = {name: np.array(g.kv_bytes + [np.nan] * (steps - len(g.kv_bytes)), dtype=float)
              for name, g in (("full attention", full), (budgeted.budget.label, budgeted))}
    series = {name: values / 1e6 for name, values in series.items()}  # MB, as in the metrics above
    st.line_chart(series, x_label="new token", y_label="KV cache, MB (counted)")
