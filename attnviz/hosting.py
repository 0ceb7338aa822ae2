"""Guards for a public server: what a hosted attnviz refuses or caps.

A server is *hosted* when ``ATTNVIZ_HOSTED`` is ``1``/``true``/``yes``, or when it runs on Streamlit Community
Cloud, detected by the folder Cloud clones apps into (``/mount/src``, the working directory of every Cloud app);
``ATTNVIZ_HOSTED=0`` turns the guards off even there.  Hosted, attnviz:

* loads no model from a local path (hub ids must be on the app's allowlist, which ``ui/state.py`` checks on
  every deployment: its defaults plus ``ATTNVIZ_ALLOWED_MODELS`` or the secret ``allowed_models``);
* never runs a model repository's own code (``trust_remote_code`` is never set, hosted or not);
* caps a text at :data:`HOSTED_TEXT_CHARS` characters before it is tokenized, and says so;
* caps what one visitor's click may cost: the tokens a frontier sweeps and how many budgets
  (:data:`HOSTED_SWEEP_TOKENS`, :data:`HOSTED_SWEEP_BUDGETS`), a calibration's length and rows
  (:data:`HOSTED_CALIBRATION_TOKENS`, :data:`HOSTED_CALIBRATION_ROWS`), new tokens generated
  (:data:`HOSTED_NEW_TOKENS`) and a pressed context (:data:`HOSTED_CONTEXT_TOKENS`); a request that is cut says
  so in one line (:func:`cap`);
* writes nothing outside its cache folder (converted weights, calibrations and hub downloads live under
  :func:`attnviz.models.gguf_cache.cache_root`; :func:`keep_writes_in_cache` points the libraries that would
  write elsewhere there too).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOSTED_ENV", "HOSTED_TEXT_CHARS", "HOSTED_SWEEP_TOKENS", "HOSTED_SWEEP_BUDGETS",
           "HOSTED_CALIBRATION_TOKENS", "HOSTED_CALIBRATION_ROWS", "HOSTED_NEW_TOKENS", "HOSTED_CONTEXT_TOKENS",
           "is_hosted", "check_model_allowed", "cap_text", "cap", "calibration_size", "keep_writes_in_cache"]

HOSTED_ENV = "ATTNVIZ_HOSTED"

HOSTED_TEXT_CHARS = 20_000
"""Characters of a text a hosted server reads (about 4 times the token cap's worth of English)."""

# What one request may cost on a public server.  Community Cloud gives an app about 2.7 GB and a shared CPU, and
# every visitor's sweep runs in the same process: a click must not hold the CPU for minutes nor double the memory.
HOSTED_SWEEP_TOKENS = 256
"""Tokens of a text a frontier sweeps (Quality vs compute, the Spend page's frontier and the shipped texts it
averages over): the app's default token cap.  Every budget is a rerun of the model, and attention's cost grows with
the square of the length."""
HOSTED_SWEEP_BUDGETS = 48
"""Budgets in one frontier sweep: every built-in policy's ladder (6 policies x 8 sizes); plug-ins beyond it are cut."""
HOSTED_CALIBRATION_TOKENS = 256
"""Tokens of the shipped text ``marginal`` and ``duo`` calibrate on (``marginal``: 30 layers x 8 key counts at 256
tokens, each budget a rerun of the model; it is then kept on disk)."""
HOSTED_CALIBRATION_ROWS = 0.25
"""Largest share of the calibration text's last rows ``marginal`` budgets (twice its default; ``rows=1`` costs
about 8 times the default's forwards)."""
HOSTED_NEW_TOKENS = 40
"""New tokens a continuation may ask for (Generate's default): each is one decode step per continuation, and the
kept continuations hold their KV caches."""
HOSTED_CONTEXT_TOKENS = 512
"""Tokens of context the Compress page presses: its frontier reruns the continuation for 45 presses and policies."""

_CLOUD_ROOT = Path("/mount/src")


def is_hosted() -> bool:
    """Whether the guards apply: ``ATTNVIZ_HOSTED`` if set, else whether this runs on Community Cloud."""
    flag = os.environ.get(HOSTED_ENV, "").strip().lower()
    if flag:
        return flag in ("1", "true", "yes")
    try:
        return Path.cwd().is_relative_to(_CLOUD_ROOT)
    except OSError:
        return False


def check_model_allowed(name: str) -> None:
    """Raise :class:`~attnviz.models.errors.ModelLoadError` (one line) for a local path on a hosted server
    (a visitor must not read the server's files, nor make it import code from them)."""
    if not is_hosted():
        return
    from .models.hub import _looks_like_path

    if _looks_like_path(name.strip()):
        from .models.errors import ModelLoadError

        raise ModelLoadError("This public server does not load models from its own folders: pick a bundled model or "
                             "an allowed Hugging Face id, or run attnviz on your own machine.")


def cap_text(text: str) -> tuple[str, str | None]:
    """``text`` cut to :data:`HOSTED_TEXT_CHARS` characters on a hosted server, and a message if it was cut."""
    if not is_hosted() or len(text) <= HOSTED_TEXT_CHARS:
        return text, None
    return text[:HOSTED_TEXT_CHARS], (f"This public server reads the first {HOSTED_TEXT_CHARS:,} characters of a text; "
                                      f"yours has {len(text):,}, so the rest is left out.")


def cap(value: int, limit: int, what: str) -> tuple[int, str | None]:
    """``value`` lowered to ``limit`` on a hosted server, and a one-line message if it was lowered.

    ``what`` names the size in the message, e.g. ``"new tokens"``.  Not hosted: ``(value, None)``.
    """
    if not is_hosted() or value <= limit:
        return value, None
    return limit, (f"This public server allows at most {limit:,} {what} per request; {value:,} were asked for, so "
                   f"{limit:,} are used. Run attnviz on your own machine for more.")


def calibration_size(n_tokens: int, rows: float | None = None) -> tuple[int, float | None]:
    """The calibration length (tokens) and ``marginal``'s share of rows, capped on a hosted server at
    :data:`HOSTED_CALIBRATION_TOKENS` and :data:`HOSTED_CALIBRATION_ROWS`."""
    if not is_hosted():
        return n_tokens, rows
    return min(n_tokens, HOSTED_CALIBRATION_TOKENS), None if rows is None else min(rows, HOSTED_CALIBRATION_ROWS)


LIBRARY_CACHES = {"TORCHINDUCTOR_CACHE_DIR": "torchinductor", "TRITON_CACHE_DIR": "triton",
                  "MPLCONFIGDIR": "matplotlib"}
"""Caches libraries keep outside attnviz's folder by default, and their folder under it when hosted.  torch makes
``$TMPDIR/torchinductor_<user>`` as soon as transformers loads a model (seen in the hosted-writes test)."""


def keep_writes_in_cache() -> None:
    """On a hosted server, point the caches of :data:`LIBRARY_CACHES` into attnviz's cache folder (a deployer's own
    setting wins).  Call before any model is loaded: ``app.py`` and the command line do."""
    if not is_hosted():
        return
    from .models.gguf_cache import cache_root

    root = cache_root()
    for variable, folder in LIBRARY_CACHES.items():
        os.environ.setdefault(variable, str(root / folder))
