"""Inside one attention head: the project's own kernel on small vectors you type, every step shown.

Then the worked example and attention module of the essay this project started from ("Rethinking attention
economics in the AI era", in Chinese), computed correctly next to what it claimed.
Every number comes from ``attnviz.engine.kernel.attention_steps`` (via ``attnviz.teaching.inside``); no model is loaded.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from attnviz.figures import matrix_figure
from attnviz.teaching.inside import (
    DEFAULT_TOKENS,
    DOCUMENT_CLAIMS,
    DOCUMENT_CODE,
    MAX_DIM,
    MAX_TOKENS,
    WORKED_K,
    WORKED_Q,
    WORKED_V,
    default_inputs,
    document_arithmetic,
    document_module_error,
    head_steps,
    matrix_to_text,
    resize,
    run_seed_module,
    seed_module_code,
    text_to_matrix,
    worked_example,
)
from ui.show import flow_row, token_legend
from ui.state import page_param, remember, set_value, shared_controls, sync_url

NAMES = {"q": "Q (queries)", "k": "K (keys)", "v": "V (values)"}
HELP = {
    "q": "What each word is looking for.",
    "k": "What each word offers, to be found by the queries.",
    "v": "What each word passes on to the words that attend to it.",
}
PLOT_CONFIG = {"displayModeBar": False}  # small teaching figures: no zoom toolbar
DEFAULT_TEXT = {name: matrix_to_text(m) for name, m in default_inputs().items()}
CODE_TABS = {"fixed": "The corrected code (this exact code runs below)", "original": "The article's original code"}
CODE_TAB_IDS = {label: tab for tab, label in CODE_TABS.items()}


def _bool(s: str) -> bool:
    return str(s).lower() in ("1", "true", "yes", "on")


def _matrix_text(s: str) -> str:
    return matrix_to_text(text_to_matrix(s))  # ValueError for a broken link: page_param falls back to the default


def num(x: float, digits: int = 3) -> str:
    """Short number for sentences: 0.15, 1, −0.629 (typographic minus)."""
    if math.isinf(x):
        return "−∞" if x < 0 else "∞"
    s = f"{x:.{digits}g}"
    return ("0" if s == "-0" else s).replace("-", "−")


def vec(xs) -> str:
    return "[" + ", ".join(num(float(x)) for x in xs) + "]"


def _bump_editors() -> None:
    st.session_state["_inside_editor_version"] = st.session_state.get("_inside_editor_version", 0) + 1


def load_inputs(tokens: str, mats: dict[str, np.ndarray], causal: bool = False) -> None:
    """Button callback: put new tokens and Q/K/V in the editors (budget off)."""
    set_value("inside_tokens", tokens)
    set_value("inside_d", int(next(iter(mats.values())).shape[1]))
    for name, m in mats.items():
        set_value(f"inside_{name}", matrix_to_text(m))
    set_value("inside_causal", causal)
    set_value("inside_budget", False)
    _bump_editors()


# --------------------------------------------------------------------------- page

shared_controls()
st.title("Inside one attention head")
st.markdown(
    "One attention head, small enough to check by hand. Type the numbers; every step below is computed by "
    "**the project's own attention code**, the same function that runs inside the real model on the other pages. "
    "(The model and text in the sidebar are not used here.)"
)
st.latex(r"\text{output} = \operatorname{softmax}\!\left(\frac{Q K^{\top}}{\sqrt{d}} + \text{mask}\right) V")

page_param("inside_tokens", " ".join(DEFAULT_TOKENS))
page_param("inside_d", 4, int)
page_param("inside_causal", False, _bool)
page_param("inside_budget", False, _bool)
page_param("inside_topk", 1, int)
for _name in NAMES:
    page_param(f"inside_{_name}", DEFAULT_TEXT[_name], _matrix_text)
if not 1 <= st.session_state["inside_d"] <= MAX_DIM:  # a hand-edited link
    set_value("inside_d", 4)
    st.session_state["inside_d"] = 4

st.header("1 · Your vectors")
st.markdown(
    "Each word (a *token*) has three short vectors: a **query** (what it is looking for), a **key** (what it "
    "offers) and a **value** (what it passes on). A real model makes them from the word with three learned "
    "matrices (section 4 below); here you type them. Double-click a number to change it."
)
controls_row = flow_row(align="bottom")  # wraps on a narrow page instead of cutting the toggles' labels
controls_row.text_input("Tokens (space-separated words)", key="inside_tokens", on_change=remember,
                        args=("inside_tokens",), width=220,
                        help=f"1 to {MAX_TOKENS} words. Each word gets one row in Q, K and V.")
controls_row.number_input("Vector size d", 1, MAX_DIM, key="inside_d", on_change=remember, args=("inside_d",),
                          width=110, help="How many numbers each query, key and value has.")
controls_row.toggle("Causal mask", key="inside_causal", on_change=remember, args=("inside_causal",),
                    width="content", help="As in GPT-style models: a word may only look at itself and earlier words.")
controls_row.toggle("Top-k budget", key="inside_budget", on_change=remember, args=("inside_budget",),
                    width="content",
                    help="Each word keeps only its K highest-scoring keys (the top-k policy of the other pages).")

words = st.session_state["inside_tokens"].split()
if len(words) > MAX_TOKENS:
    st.warning(f"Only the first {MAX_TOKENS} words are used, to keep the numbers readable.")
    words = words[:MAX_TOKENS]
if not words:
    st.info("No words typed: using a single token, “word”.")
    words = ["word"]
n, d = len(words), int(st.session_state["inside_d"])
causal = bool(st.session_state["inside_causal"])
top_k = None
if st.session_state["inside_budget"]:
    if n >= 2:
        if not 1 <= st.session_state["inside_topk"] <= n:
            set_value("inside_topk", 1)
            st.session_state["inside_topk"] = 1
        controls_row.slider("K: keys each word keeps", 1, n, key="inside_topk", on_change=remember,
                            args=("inside_topk",), width=200)
        top_k = int(st.session_state["inside_topk"])
    else:
        controls_row.caption("With one word there is nothing to drop.", width=200)

version = st.session_state.get("_inside_editor_version", 0)
mats: dict[str, np.ndarray] = {}
blanks = False
# Side by side while they fit; one under another for long vectors, so no column hides behind a scroll bar.
places = st.columns(3) if d <= 5 else [st.container() for _ in NAMES]
for col, (name, label) in zip(places, NAMES.items(), strict=True):
    base = resize(text_to_matrix(st.session_state[f"inside_{name}"]), n, d)
    frame = pd.DataFrame(base, columns=[str(j + 1) for j in range(d)])
    frame.insert(0, "token", words)
    config = {"token": st.column_config.TextColumn("token", disabled=True)}
    config |= {str(j + 1): st.column_config.NumberColumn(str(j + 1), format="plain") for j in range(d)}
    with col:
        st.markdown(f"**{label}**", help=HELP[name])
        edited = st.data_editor(frame, key=f"inside_{name}_editor_{version}_{n}x{d}", hide_index=True,
                                num_rows="fixed", column_config=config, width="stretch")
    values = edited[[str(j + 1) for j in range(d)]].to_numpy(dtype=np.float64, na_value=np.nan)
    blanks |= bool(np.isnan(values).any())
    mats[name] = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    set_value(f"inside_{name}", matrix_to_text(mats[name]))
if blanks:
    st.warning("An empty cell counts as 0.")
st.caption("Here each word you type is one token. On the other pages the model's tokenizer cuts the text, and the "
           "same notation shows its tokens:")
token_legend()

buttons = st.container(horizontal=True)
buttons.button("Reset to the example", on_click=load_inputs, args=(" ".join(DEFAULT_TOKENS), default_inputs()),
          help="the / cat / sat, with readable whole numbers.")
buttons.button("Load the article's example (section 3)", on_click=load_inputs,
          args=("apple", {"q": np.array([WORKED_Q]), "k": np.array([WORKED_K]), "v": np.array([WORKED_V])}))

sync_url(inside_tokens=" ".join(words), inside_d=d, inside_causal=causal or None,
         inside_budget=True if top_k is not None else None, inside_topk=top_k,
         **{f"inside_{name}": matrix_to_text(m) for name, m in mats.items()})

run = head_steps(mats["q"], mats["k"], mats["v"], causal=causal, top_k=top_k)
steps = run.steps
scores, scaled, masked = steps.scores.numpy(), steps.scaled.numpy(), steps.masked.numpy()
weights, output = steps.weights.numpy(), steps.output.numpy()

# --------------------------------------------------------------------------- the steps

st.header("2 · Every step")
st.caption("Rows are the words doing the looking (queries), columns the words being looked at (keys). "
           "Hover a cell for its names.")
# The worked sentences follow the last word, and the key it would pick first.
qi = n - 1
kj = int(np.argmax(np.where(steps.mask[qi].numpy(), scaled[qi], -np.inf)))
qw, kw = words[qi], words[kj]


def step(number: int, title: str, text: str, matrix: np.ndarray, **fig) -> None:
    left, right = st.columns([2, 3], vertical_alignment="center")
    left.markdown(f"##### Step {number} · {title}")
    left.markdown(text)
    rows, cols = matrix.shape
    h = min(420, max(230, 40 * rows + 150))
    w = "stretch" if cols >= 3 else 190 + 130 * cols  # one or two columns need not fill the page
    right.plotly_chart(matrix_figure(matrix, height=h, **fig), width=w, key=f"inside_step_{number}",
                       config=PLOT_CONFIG)


pairs = dict(row_labels=words, col_labels=words, y_title="query", x_title="key")
products = " + ".join(f"{num(a)}×{num(b)}" for a, b in zip(mats["q"][qi], mats["k"][kj], strict=True))
step(1, "Scores: Q Kᵀ",
     "Each word's query is multiplied with every word's key: multiply the matching numbers and add them up "
     "(a *dot product*). A big score means “this is what I am looking for”.\n\n"
     f"Example, **{qw} → {kw}**: {products} = **{num(scores[qi, kj])}**.",
     scores, **pairs)
step(2, f"Scale by 1/√d = 1/√{d}",
     f"Every score is divided by √{d} = {num(math.sqrt(d))}. Longer vectors give bigger scores; without this, "
     "the softmax would give nearly all the weight to a single key.\n\n"
     f"Example, **{qw} → {kw}**: {num(scores[qi, kj])} ÷ {num(math.sqrt(d))} = **{num(scaled[qi, kj])}**.",
     scaled, **pairs)

hidden_causal = int((~run.allowed).sum())
dropped = int(run.dropped_by_budget.sum())
if hidden_causal == 0 and dropped == 0:
    why = ("Nothing is hidden now: every word may look at every word (as in BERT). Turn on **causal** or a "
           "**budget** above to see cells blocked.")
else:
    parts = []
    if hidden_causal:
        parts.append(f"**causal**: a word may not look at later words (it has not read them yet), "
                     f"so {hidden_causal} score{'s' if hidden_causal != 1 else ''} become −∞")
    if top_k is not None:
        parts.append(f"**budget**: each word keeps only its {top_k} highest-scoring allowed "
                     f"key{'s' if top_k != 1 else ''}; {dropped} more {'are' if dropped != 1 else 'is'} dropped")
    why = "Blocked cells are set to −∞ (grey). " + "; ".join(parts) + "."
reason = " or ".join(r for r, on in (("a later word (causal)", hidden_causal), ("dropped by the budget", dropped))
                     if on) or "masked"
step(3, "Mask: −∞ where not allowed",
     why + " A score of −∞ will get exactly zero weight in the next step.",
     masked, mask_reason=f"−∞: {reason}", **pairs)

sums = weights.sum(axis=1)
step(4, "Softmax: scores → weights",
     "In each row, every score s becomes eˢ, divided by the row's total. The weights are between 0 and 1, "
     "each row sums to 1, and −∞ becomes exactly 0: the weights say how much of each key's value a word takes.\n\n"
     "Row sums: " + ", ".join(f"{w} {num(s, 4)}" for w, s in zip(words, sums, strict=True)) + ".",
     weights, **pairs)
mix = " + ".join(f"{num(weights[qi, j])}×V({words[j]})" for j in range(n) if weights[qi, j] > 0)
step(5, "Output: weighted sum of V",
     "Each word's output is a blend of the value rows, mixed in the proportions of its weights. "
     f"This is what the head passes on.\n\nExample, **{qw}**: {mix} = **{vec(output[qi])}**.",
     output, row_labels=words, col_labels=[str(j + 1) for j in range(output.shape[1])], y_title="token",
     x_title="number")

# --------------------------------------------------------------------------- the article's worked example

st.header("3 · The article's worked example, corrected")
st.markdown(
    "This project started from an essay, “Rethinking attention economics in the AI era” (in Chinese), "
    "referred to below as *the article*: this section and the next correct its worked example and its code. "
    "Its worked example has **one** "
    f"query and **one** key: Q = K = {vec(WORKED_Q)}, V = {vec(WORKED_V)}."
)
ex = worked_example()
arith = document_arithmetic()
table = pd.DataFrame(
    {
        "The article says": ["(not shown)", "(not shown)", vec(DOCUMENT_CLAIMS.weights), vec(DOCUMENT_CLAIMS.output)],
        "Our kernel computes": [num(ex.scores.item()), num(ex.scaled.item()), num(ex.weights.item()),
                                vec(ex.output[0].tolist())],
    },
    index=["Score Q·K", "Scaled score (÷ √4)", "Softmax weight", "Output"],
)
left, right = st.columns([3, 2])
left.table(table)
right.markdown(
    f"**Why the article is wrong.** With a single key the softmax has one number to share out, so its weight is "
    f"$e^{{{num(ex.scaled.item())}}} / e^{{{num(ex.scaled.item())}}} = 1$ whatever the score: the "
    f"{num(ex.scaled.item())} "
    "only matters when other keys compete. The output is therefore 1 × V = **V**.\n\n"
    f"The article's four weights of 0.5 come from nowhere (one key has one weight), and it multiplies by V "
    f"element-wise **twice**: 0.5 × V = {vec(arith['intermediate'])}, then × V again = {vec(arith['output'])}."
)

# --------------------------------------------------------------------------- the article's module, fixed

st.header("4 · The article's attention module, fixed")
st.markdown(
    "The article's code builds `AttentionModel(input_dim=5, hidden_dim=3)`: five one-hot tokens, each turned into "
    "a 3-number query, key and value by learned linear layers, then attention. As printed, it has three bugs:"
)
seed = page_param("inside_seed", 0, int)
doc_error = document_module_error()
res = run_seed_module(int(seed))
st.markdown(
    f"1. **It crashes on its own input.** The tokens are integers, and `nn.Linear` needs floats: "
    f"`{doc_error.split(',')[0]}`. Fix: convert the input to float.\n"
    "2. **Wrong scaling.** It divides the scores by √input_dim = √5, but the keys have hidden_dim = 3 numbers "
    f"after projection, so the right divisor is √d_k = **√3**. (Here √5 moves the output by up to "
    f"{res.max_diff_document:.4f}: small, but wrong.)\n"
    f"3. **Impossible output.** It printed a 5×1 column {vec(r[0] for r in DOCUMENT_CLAIMS.module_output)}. "
    "Five tokens, each a blend of 3-number values, give a **5×3** output."
)
# The open tab is kept (and in the link) like every other control: the session holds its label, the link its id.
page_param("inside_code", CODE_TABS["fixed"], lambda s: CODE_TABS.get(s, CODE_TABS["fixed"]))
if st.session_state["inside_code"] not in CODE_TAB_IDS:
    st.session_state["inside_code"] = CODE_TABS["fixed"]
fixed_tab, original_tab = st.tabs(list(CODE_TABS.values()), key="inside_code", on_change=remember,
                                  args=("inside_code",))
fixed_tab.code(seed_module_code(int(seed)), language="python")
original_tab.code(DOCUMENT_CODE, language="python")
st.number_input("Random seed (torch.manual_seed)", 0, 10_000, key="inside_seed", on_change=remember,
                args=("inside_seed",), help="Changes the random, untrained projection weights.", width=260)
code_tab = CODE_TAB_IDS.get(st.session_state.get("inside_code"), "fixed")
sync_url(inside_seed=int(seed) or None, inside_code=None if code_tab == "fixed" else code_tab)
tok5 = [f"token {i + 1}" for i in range(5)]
out_col, weights_col = st.columns([4, 5])
out_col.plotly_chart(matrix_figure(res.output.numpy(), row_labels=tok5, col_labels=["1", "2", "3"],
                                   title=f"Output: {res.output.shape[0]}×{res.output.shape[1]}", y_title="token",
                                   x_title="number", height=340), width="stretch", config=PLOT_CONFIG,
                     key="inside_seed_output")
weights_col.plotly_chart(matrix_figure(res.weights.numpy(), row_labels=tok5, col_labels=tok5,
                                       title=f"Weights: {res.weights.shape[0]}×{res.weights.shape[1]}, "
                                             "each row sums to 1",
                                       y_title="query", x_title="key", height=340), width="stretch",
                         config=PLOT_CONFIG, key="inside_seed_weights")
st.caption(
    f"Checked: our kernel on the same projections gives the same output (largest difference "
    f"{res.max_diff_kernel:.0e}), and so does PyTorch's `scaled_dot_product_attention` "
    f"({res.max_diff_sdpa:.0e}). The weights are all close to 1/5 because the projections are random and "
    "untrained: training is what teaches a head where to look."
)
