"""Start page: attention in one minute, on the real model, before any click."""

import streamlit as st

from attnviz.figures import attention_heatmap
from ui.cached import get_row
from ui.show import attempt, load_analysis, pct, si
from ui.state import page_param, remember, shared_controls, sync_url

LAYER, HEAD = 14, 2  # a head with a clear, non-trivial pattern on ordinary text (see the Explore page)

controls = shared_controls(causal_only=True)
st.title("Attention in one minute")
st.markdown(
    """
When a language model reads a sentence, every word **looks back at the earlier words** to work out what
comes next. How strongly it looks at each one is its **attention**. The grid shows this for your text in one
of the model's 270 attention "heads": each **row** is a word doing the looking, each **column** a word it looks
at, and a **darker square means more attention**.

Attention is not free: every word scores every earlier word, so the work grows with the *square* of the
text's length, and the model must keep every earlier word in memory. So treat it as a **budget**: let each
word keep only its few strongest links, and drop the rest. **Move the slider** and watch two numbers:
how much of the model's behaviour survives, and how much attention work is saved.
"""
)

analysis = load_analysis(controls, layer=LAYER)
if analysis is not None:
    ref = analysis.ref
    n = ref.n_tokens
    layer = min(LAYER, ref.shape.layers - 1)
    head = min(HEAD, ref.shape.q_heads - 1)
    default_k = max(1, min(n, 4))
    k = page_param("start_k", default_k, int)
    if not 1 <= k <= n:
        st.session_state["start_k"] = default_k

    @st.fragment
    def budget_view() -> None:
        st.slider("Links each word may keep (K)", 1, max(n, 2), key="start_k", on_change=remember,
                  args=("start_k",), help="Each word keeps its K highest-scoring earlier words (top-k attention).")
        k = int(st.session_state["start_k"])
        sync_url(start_k=k)
        row = attempt(lambda: get_row(controls.model, controls.text, controls.max_tokens, "topk", min(k, n),
                                      None, layer=layer), "Running the budget")
        if row is None:
            return
        q, c = row.quality, row.compute
        saved = 1 - c["attn_flops"] / c["attn_flops_full"]
        left, right, third = st.columns(3)
        left.metric("Quality kept", pct(q["top1"]), help="Measured: share of positions where the budgeted model "
                    "predicts the same next word as the full model.")
        right.metric("Attention compute saved", pct(saved), help="Counted from formulas: attention FLOPs skipped. "
                     "Top-k still scores every pair before choosing, so at most half can be saved.")
        third.metric("Links kept", pct(row.density), help="Counted: kept query-key pairs / all allowed pairs.")
        share = c["attn_flops_full"] / c["total_flops_full"]
        st.caption(
            f"Measured: quality (KL divergence {q['kl']:.3f} nats, perplexity {q['ppl']:.2f} vs {q['ppl_full']:.2f} "
            f"with full attention). Counted: attention is {pct(share)} of this model's "
            f"{si(c['total_flops_full'], 'FLOPs')} on {n} tokens, so savings matter most on long texts "
            "(see *Quality vs compute*)."
        )
        weights = row.weights[layer][head].float().numpy()
        st.plotly_chart(
            attention_heatmap(weights, analysis.labels, analysis.labels,
                              title=f"Layer {layer + 1}, head {head + 1}: attention with each word keeping {k} "
                                    f"link{'s' if k != 1 else ''}"),
            width="stretch",
        )

    budget_view()
    st.info("Next: **Explore attention** shows every layer and head; **Spend a budget** compares policies "
            "side by side; **Quality vs compute** maps the whole trade-off.", icon="➡️")
