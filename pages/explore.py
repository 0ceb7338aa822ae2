"""Explore attention: the model's real attention weights, head by head and layer by layer.

Heavy work is cached in ``ui/cached.py``: one summary pass per text (per-head
statistics, head-mean/max maps and thumbnails of every layer), full-resolution
weights per layer (one extra pass, or one pass for all layers on short texts)
and the rollout.  Moving a view control only redraws.
"""

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from attnviz.figures import attention_heatmap, head_grid, head_stat_heatmap, pool_matrix, title_text, token_lines
from attnviz.figures.grid import grid_tiles
from attnviz.figures.heatmap import capped_colour_top
from attnviz.figures.lines import LINES_MAX, lines_window, shift_positions
from ui.cached import fits_all_layers, get_layer_weights, get_rollout
from ui.show import attempt, flow_row, load_analysis, pct, token_legend
from ui.state import page_param, remember, set_value, shared_controls, sync_url

DEFAULT_LAYER, DEFAULT_HEAD = 15, 3  # 1-based, as shown: the start page's head (layer index 14, head index 2)
MAX_SIDE = 256  # heatmaps pool bigger matrices (their titles say so)
MAX_THUMB = 48  # head_grid's default largest tile side
LINE_THRESHOLD = 0.02

VIEWS = {
    "head": "🔎 One head",
    "lines": "🧵 Token lines",
    "layer": "🧩 Heads of a layer",
    "model": "🗺️ All layers",
    "combine": "➕ Combine heads and layers",
    "stats": "📊 Head statistics",
}
VIEW_IDS = {label: view for view, label in VIEWS.items()}
AGGS = {
    "mean": "Mean over the layer's heads",
    "max": "Max over the layer's heads",
    "rollout": "Rollout through layers 1 … {layer}",
}
STATS = {
    "entropy": "entropy (nats)",
    "sink_share": "share on the first token",
    "top3_mass": "mass in the top 3 keys",
}
STAT_HELP = {
    "entropy": "How spread out each token's attention is: 0 = all on one token; higher = spread over many.",
    "sink_share": "How much attention goes to the very first token, a common 'resting place' (attention sink).",
    "top3_mass": "How much of each token's attention its 3 favourite tokens get: near 100% = a focused head.",
}


def _tokens_from_url(value: str) -> list[int]:
    """``"3,17"`` -> ``[3, 17]`` (an empty string is an empty selection)."""
    return [int(x) for x in value.split(",") if x.strip()]


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off")


def _bump_tables() -> None:
    """The layer/head changed outside a table: redraw the tables so their selected row follows."""
    st.session_state["_explore_tables"] = st.session_state.get("_explore_tables", 0) + 1


def _on_slider(key: str) -> None:
    remember(key)
    _bump_tables()


def _on_table(table_key: str, heads: list[tuple[int, int]]) -> None:
    """A row picked in a head table: open that head (layer, head are 0-based here)."""
    state = st.session_state.get(table_key)
    rows = state["selection"]["rows"] if state is not None else []
    if rows and 0 <= rows[0] < len(heads):
        layer, head = heads[rows[0]]
        set_value("explore_layer", layer + 1)
        set_value("explore_head", head + 1)


controls = shared_controls()
st.title("Explore attention")
st.markdown(
    "These are the **real attention weights** of the model reading your text. Every layer has several "
    "attention *heads*; each head decides, for every token, how much to look at each other token "
    "(only earlier tokens in a left-to-right model such as SmolLM2; all tokens in an encoder such as MiniLM). "
    "Pick a layer and a head, then switch between the views below."
)

view_label = page_param("explore_view", VIEWS["head"], lambda s: VIEWS.get(s, VIEWS["head"]))
if view_label not in VIEW_IDS:
    st.session_state["explore_view"] = VIEWS["head"]
page_param("explore_layer", DEFAULT_LAYER, int)
page_param("explore_head", DEFAULT_HEAD, int)
page_param("explore_agg", "mean")
if st.session_state["explore_agg"] not in AGGS:
    st.session_state["explore_agg"] = "mean"
page_param("explore_stat", "entropy")
if st.session_state["explore_stat"] not in STATS:
    st.session_state["explore_stat"] = "entropy"
page_param("explore_tokens", None, _tokens_from_url)
page_param("explore_cap", True, _flag)

analysis = load_analysis(controls, None, True)
if analysis is None:
    st.info("Fix the text or the model in the sidebar to see its attention.", icon="👈")
else:
    ref = analysis.ref
    labels = analysis.labels
    n, shape, causal = ref.n_tokens, ref.shape, ref.lm.causal
    L, H = shape.layers, shape.q_heads
    summary, head_stats = analysis.summary, analysis.head_stats
    text_key = f"{controls.model}|{controls.max_tokens}|{hash(controls.text)}"

    # clamp (the kept values stay, so switching back to a bigger model restores them)
    st.session_state["explore_layer"] = min(max(1, int(st.session_state["explore_layer"])), L)
    st.session_state["explore_head"] = min(max(1, int(st.session_state["explore_head"])), H)
    words = [i for i, lab in enumerate(labels) if any(ch.isalnum() for ch in lab) and not lab.startswith(("[", "<"))]
    default_tokens = [words[-1] if words else n - 1]  # the last word: it sees the whole text in a causal model
    kept_tokens = st.session_state["explore_tokens"]
    if kept_tokens is None:
        tokens = default_tokens
    else:
        tokens = [i for i in dict.fromkeys(kept_tokens) if 0 <= i < n]
        if kept_tokens and not tokens:  # every kept token is past the end of this text
            tokens = default_tokens
    st.session_state["explore_tokens"] = tokens
    token_legend()  # every view below labels its rows, columns and lines with these tokens

    with flow_row(align="bottom"):  # on a narrow page the toggle moves down instead of losing its label
        st.slider("Layer", 1, L, key="explore_layer", on_change=_on_slider, args=("explore_layer",),
                  help=f"{L} layers, 1 = closest to the input text.")
        st.slider("Head", 1, H, key="explore_head", on_change=_on_slider, args=("explore_head",),
                  help=f"{H} heads per layer, each with its own pattern.")
        st.toggle("Colours ignore the first token", key="explore_cap", on_change=remember,
                  args=("explore_cap",), width="content",
                  help="The first token often takes most of the attention (an 'attention sink') and would make every "
                       "other square look white. On: colours are scaled to the other tokens; the first token's "
                       "squares are simply the darkest. Hover always shows the true values.")
    layer, head = int(st.session_state["explore_layer"]) - 1, int(st.session_state["explore_head"]) - 1
    cap = bool(st.session_state["explore_cap"])
    layer_names = [str(i + 1) for i in range(L)]
    head_names = [str(h + 1) for h in range(H)]
    table_version = st.session_state.get("_explore_tables", 0)

    def colour_top(m: np.ndarray) -> tuple[float | None, str]:
        """zmax for a heatmap of ``m`` (None: the figure's own) and a caption when the colours are capped."""
        top, real = capped_colour_top(m, MAX_SIDE) if cap else (None, None)
        if top is None:
            return None, ""
        return top, (f"Colours run up to {top:.2f}; the first token gets up to {real:.2f} and shows as the darkest "
                     "blue (switch off *Colours ignore the first token* to see true proportions).")

    def heatmap(m: np.ndarray, title: str, key: str) -> None:
        zmax, note = colour_top(m)
        height = min(1400, max(720, 16 * min(n, MAX_SIDE) + 240))  # tall enough to label every row up to ~70 tokens
        fig = attempt(lambda: attention_heatmap(m, labels, labels, title=title, max_side=MAX_SIDE, zmax=zmax,
                                                height=height), "Drawing the heatmap")
        if fig is not None:
            st.plotly_chart(fig, width="stretch", key=key)
            if note:
                st.caption(note)

    def layer_weights(lyr: int):
        """The layer's full-resolution (heads, n, n) float16 weights, or None (an error is shown)."""
        short = attempt(lambda: fits_all_layers(controls.model, controls.text, controls.max_tokens), "Reading")
        what = ("Reading every layer's attention (one pass of the model, kept for this text)…" if short else
                f"Running the model again to read layer {lyr + 1}'s full attention ({n} × {n} per head)…")
        with st.spinner(what):
            return attempt(lambda: get_layer_weights(controls.model, controls.text, controls.max_tokens, lyr),
                           f"Reading layer {lyr + 1}'s attention")

    def head_matrix(lyr: int, hd: int) -> np.ndarray | None:
        w = layer_weights(lyr)
        return None if w is None else w[hd].float().numpy()

    def big_head(key: str) -> None:
        m = head_matrix(layer, head)
        if m is not None:
            heatmap(m, f"Layer {layer + 1}, head {head + 1}: who looks at whom", key)

    def grid_thumbs(layers: list[int]) -> tuple[np.ndarray, str | None]:
        """``(layers, heads, s, s)`` tiles for head_grid, sized so it does not pool them again, and a note."""
        tiles = grid_tiles(np.stack([summary.thumbs[lyr].float().numpy() for lyr in layers]), n, MAX_THUMB)
        cells = max(tiles.shape[-2:])
        per = n / cells
        return tiles, None if per <= 1 else (f"each tile shrinks the head's {n}×{n} map to {cells}×{cells} cells: a "
                                             f"cell pools about {per:.2g}×{per:.2g} token pairs")

    def stats_frame(rows: list[dict]) -> pd.DataFrame:
        return pd.DataFrame({
            "layer": [r["layer"] + 1 for r in rows],
            "head": [r["head"] + 1 for r in rows],
            "entropy": [r["entropy"] for r in rows],
            "first token": [r["sink_share"] for r in rows],
            "top-3 mass": [r["top3_mass"] for r in rows],
        })

    stats_columns = {
        "layer": st.column_config.NumberColumn("layer", width="small"),
        "head": st.column_config.NumberColumn("head", width="small"),
        "entropy": st.column_config.NumberColumn("entropy (nats)", format="%.2f", help=STAT_HELP["entropy"]),
        "first token": st.column_config.ProgressColumn("share on first token", min_value=0.0, max_value=1.0,
                                                       format="percent", help=STAT_HELP["sink_share"]),
        "top-3 mass": st.column_config.ProgressColumn("mass in top 3 keys", min_value=0.0, max_value=1.0,
                                                      format="percent", help=STAT_HELP["top3_mass"]),
    }

    def head_table(rows: list[dict], key: str, height: int | str = "auto", with_layer: bool = True) -> None:
        """A sortable table of heads; picking a row opens that head."""
        heads = [(r["layer"], r["head"]) for r in rows]
        current = heads.index((layer, head)) if (layer, head) in heads else None
        order = [c for c in stats_columns if with_layer or c != "layer"]
        st.dataframe(stats_frame(rows), key=key, hide_index=True, height=height, column_config=stats_columns,
                     column_order=order,
                     on_select=partial(_on_table, key, heads), selection_mode="single-row",
                     selection_default={"selection": {"rows": [current]}} if current is not None else None)

    tabs = st.tabs(list(VIEWS.values()), key="explore_view", on_change=remember, args=("explore_view",))
    view = VIEW_IDS.get(st.session_state.get("explore_view"), "head")
    tab = dict(zip(VIEWS, tabs, strict=True))

    def is_open(name: str) -> bool:
        state = tab[name].open
        return view == name if state is None else bool(state)

    if is_open("head"):
        with tab["head"]:
            st.markdown(
                "Each **row** is a token doing the looking, each **column** a token it looks at; a **darker** "
                "square means more attention. Each row adds up to 100%. Hover a square for its exact value."
            )
            big_head("explore_head_map")

    if is_open("lines"):
        with tab["lines"]:
            st.markdown(
                f"Pick tokens on the left: a line runs to every token they give at least {LINE_THRESHOLD:.0%} of "
                "their attention, **thicker and darker = more** (the same layer and head as above)."
            )
            st.multiselect("Tokens to follow", list(range(n)), key="explore_tokens", on_change=remember,
                           args=("explore_tokens",), format_func=lambda i: f"#{i} {labels[i]}",
                           placeholder="Choose tokens (type to search)")
            selected = list(st.session_state["explore_tokens"])
            m = head_matrix(layer, head)
            if m is not None:
                start, end, dropped = lines_window(selected, n, causal)
                shown = [i for i in selected if start <= i < end]
                where = "" if (start, end) == (0, n) else f" · tokens #{start}–#{end - 1} of {n}"
                if where:
                    parts = []
                    for i in shown:
                        share = 1.0 - float(m[i, start:end].sum())
                        if share >= 0.005:
                            far = next(j for j in np.argsort(-m[i]) if not start <= j < end)
                            parts.append(f"#{i} {labels[i]} sends {pct(share)} there (most to #{far} {labels[far]})")
                    st.info(
                        f"The text has {n} tokens; only {LINES_MAX} stay readable, so this shows **tokens "
                        f"#{start}–#{end - 1}** "
                        + ("(ending at the last selected token: a token only looks back). " if causal else
                           "(around the selected tokens). ")
                        + ("Attention to tokens outside this window has no line: " + "; ".join(parts) + "."
                           if parts else ""), icon="🔭")
                if dropped:
                    st.warning(f"{len(dropped)} selected token(s) (" + ", ".join(f"#{i}" for i in dropped[:8])
                               + ("…" if len(dropped) > 8 else "") + f") are more than {LINES_MAX} tokens away from "
                               "the others and are not drawn: pick tokens closer together.")
                fig = attempt(lambda: token_lines(m[start:end, start:end], labels[start:end],
                                                  [i - start for i in shown], threshold=LINE_THRESHOLD,
                                                  title=f"Layer {layer + 1}, head {head + 1}: where the selected "
                                                        f"tokens look{where}"), "Drawing the lines")
                if fig is not None:
                    st.plotly_chart(shift_positions(fig, start, end - start), width="stretch", key="explore_lines")

    if is_open("layer"):
        with tab["layer"]:
            st.markdown(
                f"All {H} heads of layer {layer + 1} side by side: heads of one layer read the same text but often "
                "learn very different patterns. **Pick a row in the table** (or use the *Head* slider) to open a "
                "head below."
            )
            w = layer_weights(layer)
            if w is not None:
                tiles = [pool_matrix(w[h].float().numpy(), MAX_THUMB, mode="share") for h in range(H)]
                factor = tiles[0][1]
                note = "rows: tokens looking · columns: tokens looked at"  # short lines: plotly titles never wrap
                if factor > 1:
                    note += f"<br>each tile at 1/{factor} resolution: a cell pools {factor}×{factor} token pairs"
                fig = attempt(lambda: head_grid(np.stack([t for t, _ in tiles]), layer_labels=[str(layer + 1)],
                                                head_labels=head_names, height=340,
                                                title=title_text(f"Layer {layer + 1}: every head", note)),
                              "Drawing the heads")
                if fig is not None:
                    st.plotly_chart(fig, width="stretch", key="explore_layer_grid")
            rows = [r for r in head_stats.table() if r["layer"] == layer]
            head_table(rows, f"explore_layer_table_{text_key}_{layer}_{table_version}", with_layer=False)
            big_head("explore_layer_map")

    if is_open("model"):
        with tab["model"]:
            st.markdown(
                f"Every head of the model at once ({L} layers × {H} heads = {L * H} small maps, input side on the "
                "left): you can spot families of heads, such as heads that look at the previous token (a diagonal "
                "line) or at the first token (a dark left edge). Choose one with the *Layer* and *Head* sliders "
                "to open it below."
            )
            thumbs, note = grid_thumbs(list(range(L)))
            fig = attempt(lambda: head_grid(thumbs, layer_labels=layer_names, head_labels=head_names,
                                            title=title_text(f"All {L * H} heads: each tile is one head's attention "
                                                             "map", note)), "Drawing the heads")
            if fig is not None:
                st.plotly_chart(fig, width="stretch", key="explore_model_grid")
            big_head("explore_model_map")

    if is_open("combine"):
        with tab["combine"]:
            st.radio("Combine", list(AGGS), key="explore_agg", horizontal=True, on_change=remember,
                     args=("explore_agg",), format_func=lambda a: AGGS[a].format(layer=layer + 1),
                     label_visibility="collapsed")
            agg = st.session_state["explore_agg"]
            if agg == "mean":
                st.markdown(f"The **average** of layer {layer + 1}'s {H} heads: what the layer as a whole attends "
                            "to (each row still adds up to 100%).")
                heatmap(summary.head_mean[layer].float().numpy(),
                        f"Layer {layer + 1}: mean of its {H} heads", "explore_combine_map")
            elif agg == "max":
                st.markdown(f"The **strongest** weight any of layer {layer + 1}'s {H} heads gives each pair: a "
                            "square is dark if at least one head looks there (rows no longer add up to 100%).")
                heatmap(summary.head_max[layer].float().numpy(),
                        f"Layer {layer + 1}: max over its {H} heads", "explore_combine_map")
            else:
                st.markdown(
                    f"**Attention rollout** (Abnar & Zuidema, 2020) chains the head-averaged attention of layers 1 to "
                    f"{layer + 1}, counting the residual connection as half of the attention to itself: how much each "
                    "token ends up drawing on each input token, if attention were the only way information moved. "
                    "Move the *Layer* slider to watch it spread."
                )
                with st.spinner("Chaining the layers…"):
                    rolled = attempt(lambda: get_rollout(controls.model, controls.text, controls.max_tokens, layer),
                                     "Computing the rollout")
                if rolled is not None:
                    heatmap(rolled, f"Attention rollout through layers 1–{layer + 1}", "explore_combine_map")

    if is_open("stats"):
        with tab["stats"]:
            st.markdown(
                "Three numbers per head summarise its pattern (averaged over the tokens doing the looking). "
                "**Sort** the table by clicking a column header; **pick a row** to open that head below."
            )
            st.radio("Statistic", list(STATS), key="explore_stat", horizontal=True, on_change=remember,
                     args=("explore_stat",), format_func=STATS.get, help=" ".join(STAT_HELP.values()))
            stat = st.session_state["explore_stat"]
            st.caption(STAT_HELP[stat])
            values = head_stats.arrays()[stat]
            fig = attempt(lambda: head_stat_heatmap(values, STATS[stat], layer_labels=layer_names,
                                                    head_labels=head_names,
                                                    fmt=".0%" if stat != "entropy" else ".2f"),
                          "Drawing the statistics")
            if fig is not None:
                st.plotly_chart(fig, width="stretch", key="explore_stat_map")
            head_table(head_stats.table(), f"explore_stats_table_{text_key}_{table_version}", height=420)
            big_head("explore_stats_head")

    tokens_now = list(st.session_state["explore_tokens"])
    sync_url(explore_view=None if view == "head" else view,
             explore_layer=layer + 1, explore_head=head + 1,
             explore_agg=None if st.session_state["explore_agg"] == "mean" else st.session_state["explore_agg"],
             explore_stat=None if st.session_state["explore_stat"] == "entropy" else st.session_state["explore_stat"],
             explore_tokens=None if kept_tokens is None and tokens_now == default_tokens
             else ",".join(map(str, tokens_now)),
             explore_cap=None if cap else 0)
