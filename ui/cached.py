"""Shared caches: one loaded model per name for the whole server, and results keyed by plain values.

``st.cache_resource`` shares objects across sessions and threads without
copying (tensors are never pickled); nothing here is mutated after it is
cached, and every budget travels with its own call.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gc
import hashlib
import inspect
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

try:  # a cached function's run sets it: st commands are then recorded for replay
    from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function
except ImportError:  # a Streamlit without it: pages wait without saying so rather than fail to replay
    in_cached_function = None

from attnviz.budget import Budget
from attnviz.engine.queue import PassQueue
from attnviz.generate import Generation, generate_each
from attnviz.inspection.observe import HeadStats, LayerSummary
from attnviz.inspection.tokens import token_labels
from attnviz.measure import Reference, Row, attention_weights, budget_pass, encode_for, reference_pass
from attnviz.models import LoadedModel, load_model
from attnviz.presses import Press


def budget_key(budget: Budget) -> str:
    """What identifies a budget in a cache key: its policy's class (a plug-in may reuse a field layout) and values.

    Streamlit would hash a dataclass by its fields alone, so ``topk`` and ``window`` (no fields) at the
    same size would share one cache entry.
    """
    cls = type(budget.policy)
    return f"{cls.__module__}.{cls.__qualname__}:{budget!r}"


def press_key(press: Press) -> str:
    """What identifies a press in a cache key: its class and values (as :func:`budget_key`)."""
    cls = type(press)
    return f"{cls.__module__}.{cls.__qualname__}:{press!r}"


HASH_FUNCS = {Budget: budget_key, Press: press_key}

PASS_SLOTS = int(os.environ.get("ATTNVIZ_PASS_SLOTS", "0"))
"""Heavy model passes the server runs at once (``ATTNVIZ_PASS_SLOTS``); the others wait their turn, in the order
their runs began.  0 (the default): no queue, every pass shares the cores.

In one process, 2 slots shortened the first visitors' wait in a burst (benchmarks/load_queue.py); in the app with
the visitors' browsers on the same 2 cores (tests/browser/test_load.py) they did not, and the last visitor waited
longer: benchmarks/README.md.  A server whose visitors' browsers run elsewhere may set 2."""
PASSES = PassQueue(PASS_SLOTS) if PASS_SLOTS > 0 else None  # one per server process, never a cleared cache's

_waits = threading.local()  # per script thread: the page's wait callback, and when its run began


def set_wait_notice(callback: Callable[[int], None] | None) -> None:
    """Call ``callback(n)`` whenever this run's model passes wait for ``n`` other requests (``callback(0)``: no
    longer waiting), for the rest of this script run; its passes are served in the order runs began.

    Called by the page at the start of each full run: the queue's turns use that start time.  A fragment's rerun
    (a slider under ``st.fragment``) is not told, as it may not write outside its fragment, and queues from now.
    The callback runs inside cached functions, outside their recorded elements (a cache hit replays none of it).
    """
    _waits.callback = callback
    _waits.since = time.monotonic()
    _waits.run = _this_run()


def _this_run():
    ctx = get_script_run_ctx(suppress_warning=True)
    return None if ctx is None else (id(ctx), tuple(ctx.fragment_ids_this_run or ()))


def _notice() -> tuple[Callable[[int], None] | None, float | None]:
    """This thread's wait callback (free of cached-function recording) and run start, if set for this run."""
    callback = getattr(_waits, "callback", None)
    if callback is None or _waits.run != _this_run():
        return None, None
    if in_cached_function is None:
        return None, _waits.since
    # Elements made inside a cached function are recorded and replayed on a hit, and one written into a
    # placeholder made outside it cannot be: the notice is written in a copy of the context marked "not in a
    # cached function", which records nothing.
    return (lambda n: contextvars.copy_context().run(_unrecorded, callback, n)), _waits.since


def _unrecorded(callback: Callable[[int], None], n: int) -> None:
    in_cached_function.set(False)
    callback(n)


def _turn():
    """A turn in :data:`PASSES` for one model pass of this thread (with ``with``)."""
    if PASSES is None:
        return contextlib.nullcontext()
    on_wait, since = _notice()
    return PASSES.turn(on_wait=on_wait, since=since)


_in_flight: dict[tuple, int] = {}  # what a cached function is computing -> the thread that computes it
_in_flight_lock = threading.Lock()


def _call_key(name: str, args: tuple) -> tuple:
    return (name, *(HASH_FUNCS[type(a)](a) if type(a) in HASH_FUNCS else a for a in args))


def _waiting_for_same(key: tuple, call: Callable[[], object]):
    """``call()``, saying "waiting" while another thread computes the same cached call (Streamlit's lock for the
    key makes this one wait for its result): the requests ahead are that thread's place in :data:`PASSES` (if
    there is a queue), plus its own request."""
    me = threading.get_ident()
    with _in_flight_lock:
        owner = _in_flight.setdefault(key, me)
    on_wait = None
    if owner != me:
        on_wait, _ = _notice()
        if on_wait is not None:
            on_wait(((PASSES.ahead(owner) if PASSES else None) or 0) + 1)
    try:
        return call()
    finally:
        if owner == me:
            with _in_flight_lock:
                _in_flight.pop(key, None)
        elif on_wait is not None:
            on_wait(0)


def _shared(max_entries: int):
    """``st.cache_resource`` whose key is the full argument list, defaults included.

    Streamlit keys a call by the arguments as passed: ``f(a, b)`` and ``f(a, b, False)`` would run and keep
    the same result twice even when ``False`` is the default (seen: the start page computed its reference
    twice). Binding the defaults first gives one key per distinct call.
    """

    def decorate(fn):
        cached = st.cache_resource(show_spinner=False, max_entries=max_entries, hash_funcs=HASH_FUNCS)(fn)
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return _waiting_for_same(_call_key(fn.__qualname__, bound.args), lambda: cached(*bound.args))

        call.clear = cached.clear
        return call

    return decorate


SHARED_LAYER = 13
"""The layer the start and budget pages open on (layer 14 on screen). The text's reference captures its
weights, and pages that draw no weights (the frontier) ask for that same reference: one forward serves all."""


@_shared(max_entries=3)
def get_model(name: str) -> LoadedModel:
    """The model, loaded once per server (errors are not cached, so a fixed install is picked up).

    Every object alive before and after the load is moved out of the cyclic garbage collector's reach
    (``gc.freeze``): a full collection walks every tracked object while holding the GIL, and with SmolLM2
    loaded there are hundreds of thousands of them (imports, the tokenizer's vocabulary): a stall of every
    session's script whenever Python decides to collect (benchmarks/README.md). They live as long as the
    server; a model dropped from this cache is
    still freed, by reference counting (tested: nothing in it is held by a cycle).
    """
    _freeze_live_objects()
    lm = load_model(name)
    _freeze_live_objects()
    _LOADED.add(name)
    return lm


_LOADED: set[str] = set()  # names get_model has loaded in this server (the first load may download)


def model_loaded(name: str) -> bool:
    """Whether :func:`get_model` has loaded ``name`` before in this server (no download to show then)."""
    return name in _LOADED


def _freeze_live_objects() -> None:
    gc.collect()  # what is garbage now must not be frozen with the rest
    gc.freeze()


@dataclass(frozen=True)
class Analysis:
    """A text's full-attention run plus what the pages draw from it."""

    ref: Reference
    labels: list[str]
    head_stats: HeadStats | None
    summary: LayerSummary | None


@_shared(max_entries=2)
def get_analysis(model: str, text: str, max_tokens: int, layer: int | None = None,
                 summaries: bool = False) -> Analysis:
    """Full-attention reference of ``text``; weights of ``layer`` captured, per-layer summaries if asked."""
    lm = get_model(model)
    enc = encode_for(lm, text, max_tokens)
    observers = [HeadStats(), LayerSummary()] if summaries else []
    # With summaries (the Explore page) the reference is only drawn, never compared against: skip its
    # log-probabilities and KV cache (200 MB and 47 MB at 1024 tokens).
    with _turn():
        ref = reference_pass(lm, enc, capture=None if layer is None else [layer], observers=observers,
                             for_budgets=not summaries)
    return Analysis(ref=ref, labels=token_labels(lm.tokenizer, enc.ids[0].tolist()),
                    head_stats=observers[0] if summaries else None, summary=observers[1] if summaries else None)


@_shared(max_entries=8)
def get_row(model: str, text: str, max_tokens: int, budget: Budget, layer: int | None = None) -> Row:
    """One budget's result against the text's reference (the reference itself is cached separately).

    Keeps the captured layer's weights (every head: switching heads is instant) but not its keep mask, which
    no page draws (the 8 newest rows: at 1024 tokens a layer's weights are 19 MB).
    """
    lm = get_model(model)
    ref = get_analysis(model, text, max_tokens, layer).ref
    if os.environ.get("ATTNVIZ_LOG_PASSES"):  # the browser test counts model passes in the server's log
        print(f"attnviz budget_pass {budget.label}", file=sys.stderr, flush=True)
    with _turn():
        row = budget_pass(lm, ref, [budget], capture=None if layer is None else [layer])[0]
    return replace(row, keep={})


ALL_LAYERS_BYTES = 64 * 2**20  # capture every layer in one pass when all weights fit in this (float16)


@_shared(max_entries=2)
def get_all_layer_weights(model: str, text: str, max_tokens: int) -> dict:
    """Every layer's float16 ``(q_heads, n, n)`` weights from ONE pass (only for short texts: see below)."""
    lm = get_model(model)
    enc = encode_for(lm, text, max_tokens)
    with _turn():
        return attention_weights(lm, enc, None)


def fits_all_layers(model: str, text: str, max_tokens: int) -> bool:
    """Whether all layers' weights of this text fit in ``ALL_LAYERS_BYTES`` (smollm2: ~340 tokens; minilm: 512)."""
    from attnviz.measure.compute import model_shape

    lm = get_model(model)
    n = encode_for(lm, text, max_tokens).n_tokens
    shape = model_shape(lm.model)
    return shape.layers * shape.q_heads * n * n * 2 <= ALL_LAYERS_BYTES


@_shared(max_entries=6)
def get_layer_weights(model: str, text: str, max_tokens: int, layer: int):
    """Full-resolution float16 ``(q_heads, n, n)`` attention of one layer (a torch tensor; do not mutate).

    Short texts: taken from one pass capturing every layer (so flipping through layers is instant);
    long ones: one pass up to ``layer`` capturing only it (at 1024 tokens 19 MB per entry instead of
    566 MB for all layers).
    """
    if fits_all_layers(model, text, max_tokens):
        return get_all_layer_weights(model, text, max_tokens)[layer]
    lm = get_model(model)
    enc = encode_for(lm, text, max_tokens)
    with _turn():
        return attention_weights(lm, enc, [layer])[layer]


@_shared(max_entries=4)
def get_rollout(model: str, text: str, max_tokens: int, through_layer: int):
    """Attention rollout ``(n, n)`` float32 over layers ``0..through_layer`` of the head-mean maps."""
    import numpy as np

    from attnviz.inspection.aggregate import rollout

    summary = get_analysis(model, text, max_tokens, None, True).summary
    return rollout([summary.head_mean[layer] for layer in range(through_layer + 1)], dtype=np.float32)


CONTINUATION_BYTES = 256 * 2**20
"""Bound on the decode states the kept continuations hold (their KV caches), in bytes.

A state holds keys x 2 (keys and values) x d_head x 4 bytes per layer and KV head: for SmolLM2 (30 layers,
3 KV heads, d_head 64) 46,080 bytes per cached token, so a full-attention continuation at the 1024-token cap
holds 47 MB, and 376 tokens (the default 256-token cap plus 120 new) 17 MB.  Evicting policies hold K tokens.
"""
CONTINUATIONS_KEPT = 16
"""Continuations kept at most (fewer when their states pass :data:`CONTINUATION_BYTES`)."""


class _Continuations:
    """The longest continuation made so far per (model, prompt, budget, token cap), least recently used first.

    A request for fewer tokens is its prefix, one for more resumes it (greedy decoding is deterministic:
    both give exactly what decoding from scratch gives).  Kept continuations are never changed, only
    replaced; a lock per key lets one request extend a continuation while others asking for it wait.
    """

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.kept: OrderedDict[tuple, Generation] = OrderedDict()
        self.locks: dict[tuple, threading.Lock] = {}

    def lock(self, key: tuple) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def get(self, key: tuple) -> Generation | None:
        with self.guard:
            if key in self.kept:
                self.kept.move_to_end(key)
            return self.kept.get(key)

    def put(self, key: tuple, gen: Generation) -> None:
        """Keep ``gen`` unless the kept one for ``key`` already holds it (same prompt ids, as many tokens)."""
        with self.guard:
            old = self.kept.get(key)
            if old is None or old.prompt_ids != gen.prompt_ids or len(gen.new_ids) > len(old.new_ids):
                self.kept[key] = gen
            self.kept.move_to_end(key)
            while len(self.kept) > 1 and (len(self.kept) > CONTINUATIONS_KEPT or self.nbytes() > CONTINUATION_BYTES):
                dropped, _ = self.kept.popitem(last=False)
                # A request still holding this lock then races a new one at worst: both decode, neither is wrong.
                self.locks.pop(dropped, None)

    def nbytes(self) -> int:
        return sum(g.state.nbytes for g in self.kept.values() if g.state is not None)

    def forget(self, keys: list[tuple]) -> None:
        """Drop the locks of ``keys`` that hold no continuation (their request failed): each lock's key holds a
        prompt, and failing requests (bad input on a public server) would otherwise pile them up for good."""
        with self.guard:
            for key in keys:
                if key not in self.kept:
                    self.locks.pop(key, None)


@st.cache_resource(show_spinner=False)
def _continuations() -> _Continuations:
    """Continuations kept for the whole server (every session's requests extend the same ones)."""
    return _Continuations()


def get_continuations(model: str, prompt: str, budget: Budget, new_tokens: int, max_tokens: int) -> list[Generation]:
    """Full and budgeted continuations of ``prompt``, each the prefix or the extension of the longest kept one.

    What still has to be decoded runs side by side (one core each).  One more new token costs one decode
    step per continuation; fewer cost none.  The full continuation is shared by every budget.
    """
    lm = get_model(model)
    budgets = [Budget("full"), budget]
    keys = [(model, prompt, budget_key(b), max_tokens) for b in budgets]
    store = _continuations()
    try:
        with ExitStack() as held:
            for key in sorted(set(keys)):  # one order for every request: no two wait on each other
                held.enter_context(store.lock(key))
            kept = [store.get(key) for key in keys]
            with _turn():  # after the continuations' locks: one holding a turn never waits for a lock
                pair = generate_each(lm, prompt, budgets, new_tokens, max_tokens, resume=kept)
            for key, gen in zip(keys, pair, strict=True):
                store.put(key, gen)
    finally:
        store.forget(keys)
    return pair


def text_id(text: str) -> str:
    """What stands for a text in the keys of the row stores below: its SHA-256 (64 characters), so a key's size does
    not grow with the text (1,024 keys each holding a long text of their own would be unbounded off a hosted
    server)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


SWEPT_ROWS_KEPT = 1024
"""Budget rows kept by :func:`swept_rows`, over every model and text (a 6-policy sweep is about 48 rows: some 20
such sweeps).  A row is about 0.6 kB as JSON, 3 kB as Python objects: at most about 3 MB, keys included."""


@st.cache_resource(show_spinner=False)
def _finished_sweeps() -> tuple[OrderedDict, threading.Lock]:
    """Frontier rows already swept, shared by every session: ``(model, text_id, cap, budget_key) -> row``, oldest
    used first, at most ``SWEPT_ROWS_KEPT`` of them; and the lock that guards the dict."""
    return OrderedDict(), threading.Lock()


def swept_rows(model: str, text: str, max_tokens: int, ref: Reference, budgets: list[Budget],
               progress) -> list[dict]:
    """The JSON rows (with labels) of ``budgets`` against ``ref``, one per budget in order; do not mutate them.

    Each budget is swept once per server and kept on its own, keyed by (model, :func:`text_id`, cap,
    :func:`budget_key`):
    adding a policy to a sweep runs only its budgets, and removing one runs no model pass at all.  A budget's
    row does not depend on the budgets it ran with (packed rows equal lone ones; its time is the share of its
    own pass).  Not a cached function itself: the progress bar belongs to the run that sweeps, so the sweep
    runs outside any cached call and only its rows are stored.
    """
    def sweep(missing: list[Budget]) -> list[dict]:
        lm = get_model(model)
        with _turn():
            rows = budget_pass(lm, ref, missing, progress=progress)
        return [{**r.to_json(), "label": r.budget.label} for r in rows]

    return _kept_rows(_finished_sweeps(), SWEPT_ROWS_KEPT, (model, text_id(text), max_tokens), budgets, sweep)


def _kept_rows(store_and_lock: tuple[OrderedDict, threading.Lock], limit: int, where: tuple, budgets: list[Budget],
               run: Callable[[list[Budget]], list]) -> list:
    """One row per budget from a server-wide row store, keyed by ``(*where, budget_key)``; ``run(missing)`` makes
    the rows of the budgets not found (in one call, in their order), which are then kept, the least recently used
    dropped beyond ``limit``."""
    keys = [(*where, budget_key(b)) for b in budgets]
    store, lock = store_and_lock
    with lock:
        found = {k: store[k] for k in keys if k in store}
    missing = {k: b for k, b in zip(keys, budgets, strict=True) if k not in found}
    if missing:
        found.update(zip(missing, run(list(missing.values())), strict=True))
    with lock:
        for k in keys:  # newest last: these were just used
            store[k] = found[k]
            store.move_to_end(k)
        while len(store) > limit:
            store.popitem(last=False)
    return [found[k] for k in keys]


@_shared(max_entries=3)
def get_model_config(model: str):
    """The loaded model's :class:`attnviz.measure.scaling.ModelConfig` (its shape, for counting FLOPs at any length)."""
    from attnviz.measure.scaling import config_from_model

    return config_from_model(get_model(model))


@_shared(max_entries=8)
def get_press_row(model: str, text: str, max_tokens: int, context: int, press: Press, ratio: float):
    """One press at one ratio on the text's first ``context`` tokens (:class:`attnviz.measure.press.PressRow`),
    against the start page's reference (its keys and queries: pressing costs no extra forward of the context)."""
    from attnviz.measure.press import press_pass

    lm = get_model(model)
    ref = get_analysis(model, text, max_tokens, SHARED_LAYER).ref
    with _turn():
        return press_pass(lm, ref, context, [(press, ratio)])[0]


@_shared(max_entries=8)
def get_pressed_continuation(model: str, text: str, max_tokens: int, context: int, press: Press | None,
                             ratio: float, new_tokens: int) -> Generation:
    """Greedy continuation of the text's first ``context`` tokens from the cache ``press`` leaves at ``ratio``
    (None: the full cache, shared by every press)."""
    from attnviz.measure.press import generate_pressed

    lm = get_model(model)
    ref = get_analysis(model, text, max_tokens, SHARED_LAYER).ref
    kept = None if press is None else get_press_row(model, text, max_tokens, context, press, ratio).kept_mask
    with _turn():
        return generate_pressed(lm, ref.ids, context, kept, new_tokens)


SPENT_ROWS_KEPT = 64
"""Rows kept by :func:`spent_rows` over every model and text (a slider's worth of totals for a few allocators);
a row without weights is a few kB (its allocation map, its top-1 tokens)."""


@st.cache_resource(show_spinner=False)
def _spent_rows() -> tuple[OrderedDict, threading.Lock]:
    """Rows of the Spend page, shared by every session: ``(model, text_id, cap, budget_key) -> Row``, oldest used
    first; and the lock that guards the dict."""
    return OrderedDict(), threading.Lock()


def spent_rows(model: str, text: str, max_tokens: int, ref: Reference, budgets: list[Budget]) -> list[Row]:
    """The rows of ``budgets`` against ``ref`` (no weights kept), one per budget in order; do not mutate them.

    Each budget's row is kept on its own, so uniform at a total is run once whatever allocator it is compared
    with, and a slider move runs only the budgets that are new, all of them in ONE ``budget_pass`` call (on a short
    text two passes side by side, one core each).  Not a cached function: rows found are taken, only the missing
    ones run.
    """
    def spend(missing: list[Budget]) -> list[Row]:
        if os.environ.get("ATTNVIZ_LOG_PASSES"):  # the browser test counts model passes in the server's log
            print(f"attnviz budget_pass {', '.join(b.label for b in missing)}", file=sys.stderr, flush=True)
        lm = get_model(model)
        with _turn():
            rows = budget_pass(lm, ref, missing)
        return [replace(r, keep={}, weights={}) for r in rows]

    return _kept_rows(_spent_rows(), SPENT_ROWS_KEPT, (model, text_id(text), max_tokens), budgets, spend)


@_shared(max_entries=3)
def get_reference(model: str, text: str, max_tokens: int) -> Reference:
    """A text's full run for budgets, nothing captured: the shipped texts a frontier is averaged over (kept apart
    from :func:`get_analysis`, whose two entries hold the pages' own texts)."""
    lm = get_model(model)
    enc = encode_for(lm, text, max_tokens)
    with _turn():
        return reference_pass(lm, enc)
