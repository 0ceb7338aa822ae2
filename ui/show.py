"""Small display helpers shared by the pages: friendly errors, notes, metric formatting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from attnviz.budget import BudgetError
from attnviz.inspection.tokens import TOKEN_LEGEND
from attnviz.models import LoadedModel, ModelLoadError, fetch_model
from attnviz.models.specs import BUNDLED
from attnviz.text import TextError

from .cached import Analysis, get_analysis, get_model, model_loaded, set_wait_notice

T = TypeVar("T")
USER_ERRORS = (BudgetError, ModelLoadError, TextError)


def attempt(fn: Callable[[], T], what: str) -> T | None:
    """Run ``fn``; show a clear message instead of a traceback for bad input (returns None then)."""
    try:
        return fn()
    except USER_ERRORS as exc:
        st.error(f"{what}: {exc}")
    except MemoryError:
        st.error(f"{what}: the server ran out of memory. Try a shorter text (lower the token cap).")
    except Exception as exc:  # noqa: BLE001 - an unexpected failure must not take the page down
        st.error(f"{what} failed unexpectedly ({type(exc).__name__}: {exc}). The rest of the page still works.")
    return None


def waiting_text(n: int) -> str:
    """What a page says while its model passes wait for ``n`` other requests."""
    return f"Waiting for {n} other request{'' if n == 1 else 's'}…"


def wait_notice() -> None:
    """Here, a line that says "Waiting for N other requests…" while this run's model passes wait their turn on
    the shared server (or for another session computing the same thing); empty otherwise.  Call once per run,
    before the page computes anything."""
    slot = st.empty()

    def say(n: int) -> None:
        if n:
            slot.info(waiting_text(n), icon="⏳")
        else:
            slot.empty()

    set_wait_notice(say)


# Streamlit fades every element of a run that takes over 0.5 s (an opacity transition over 1 s). Under a slider
# that answers in about a second the fade is only flicker, and animating the opacity of large heatmaps costs the
# browser CPU that the server needs when both share a machine (benchmarks/README.md). Elements inside a live area
# keep full opacity; the running indicator still shows.
_LIVE_CSS = "<style>.st-key-live [data-stale='true'] {opacity: 1 !important; transition: none !important;}</style>"


def flow_row(gap: str = "medium", align: str = "top", min_px: int | None = None, key: str | None = None):
    """A row (use it with ``with``) whose elements wrap onto further lines when the page is too narrow for them.

    ``st.columns`` keeps its columns side by side at any width: on a narrow or zoomed-in page (1024 px with the
    sidebar open, or a presenter's 150 % zoom) metric labels and even values were cut ("1.75…" for 1.75 MB) and
    heatmaps squeezed to a sliver. Here stretchy elements share the row and fixed-width ones move down instead.
    ``align="bottom"`` lines toggles up with the boxes of labelled inputs beside them.

    ``min_px`` (with a ``key`` unique on the page): the elements share the row equally, as wide as it allows, but
    none gets narrower than this; below it they stack (Streamlit's own minimum for a chart is 224 px).
    """
    if min_px is not None:
        if not key:
            raise ValueError("flow_row(min_px=...) needs a key: the CSS rule finds the row by it")
        st.html(f"<style>.st-key-{key} > div {{flex: 1 1 {int(min_px)}px !important;}}</style>")
    return st.container(horizontal=True, gap=gap, vertical_alignment=align, key=key)


def live_area():
    """A container (use it with ``with``) whose elements do not fade while the next result is computed.

    Call it once per run, inside the fragment that a slider reruns.
    """
    st.html(_LIVE_CSS)
    return st.container(key="live")


def load_model_shown(name: str) -> LoadedModel | None:
    """The model (loaded once per server), showing a hub download's progress while it runs; if it fails, one
    message and a "Try again" button (failed loads are not cached, so the rerun its click makes tries again)."""
    box = st.empty()

    def load() -> LoadedModel:
        if not model_loaded(name):  # the first load on this server: the hub copy may have to be downloaded
            title = fetch_model(name, progress=_DownloadProgress(box, name))
            if title:
                box.progress(1.0, text=f"Preparing {title}: loading the downloaded weights…")
        with st.spinner(f"Loading {name} (the first start converts the weights, about 30 s)…"):
            return get_model(name)

    # Slots of their own, drawn empty at once: the last run's message and button go as soon as Try again is
    # clicked (a container would keep its stale children on screen until the download ends).
    problem, retry = st.empty(), st.empty()
    with problem:
        lm = attempt(load, "Loading the model")
    if lm is None:
        retry.button("Try again", key="retry_model_load", type="primary", icon=":material/refresh:")
    box.empty()
    return lm


class _DownloadProgress:
    """``progress(done, total)`` for :func:`attnviz.models.fetch_model`: a progress bar saying x of y MB."""

    def __init__(self, box, name: str) -> None:
        spec = BUNDLED.get(name.strip().lower())
        self.box, self.title, self.last = box, spec.title if spec else name, 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.25 and done < total:  # a few updates a second, not one per megabyte
            return
        self.last = now
        self.box.progress(done / total if total else 0.0,
                          text=f"Downloading {self.title} from the Hugging Face hub "
                               f"({done / 1e6:,.0f} of {total / 1e6:,.0f} MB)…")


def load_analysis(controls, layer: int | None = None, summaries: bool = False) -> Analysis | None:
    """Model + full-attention analysis of the shared text, with spinners and clear errors."""
    lm = load_model_shown(controls.model)
    if lm is None:
        return None
    with st.spinner("Running the model on your text…"):
        analysis = attempt(lambda: get_analysis(controls.model, controls.text, controls.max_tokens, layer, summaries),
                           "Reading the text")
    if analysis is not None:
        notes(analysis)
    return analysis


def notes(analysis: Analysis) -> None:
    """Which weights ran, and whether the text was cut."""
    ref = analysis.ref
    enc = ref.encoded
    msg = f"**Model:** {ref.lm.weights} · **{enc.n_tokens} tokens**"
    if enc.truncated_from:
        msg += f" · text truncated from {enc.truncated_from} tokens to the cap"
    st.caption(msg)


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def si(x: float | None, unit: str = "") -> str:
    """1234567 -> '1.23 M' (FLOPs, bytes)."""
    if x is None:
        return "–"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}".strip()


def token_legend() -> None:
    """One grey line under anything that shows tokens: what ␣, ↵, split words and (1/2) mean."""
    st.caption(TOKEN_LEGEND)
