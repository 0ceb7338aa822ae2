"""Guards for a public server: what a hosted attnviz refuses or caps.

A server is *hosted* when ``ATTNVIZ_HOSTED`` is ``1``/``true``/``yes``, or when it runs on Streamlit Community
Cloud, detected by the folder Cloud clones apps into (``/mount/src``, the working directory of every Cloud app);
``ATTNVIZ_HOSTED=0`` turns the guards off even there.  Hosted, attnviz:

* loads no model from a local path (hub ids must be on the app's allowlist, which ``ui/state.py`` checks on
  every deployment: its defaults plus ``ATTNVIZ_ALLOWED_MODELS`` or the secret ``allowed_models``);
* never runs a model repository's own code (``trust_remote_code`` is never set, hosted or not);
* caps a text at :data:`HOSTED_TEXT_CHARS` characters before it is tokenized, and says so;
* writes nothing outside its cache folder (converted weights, calibrations and hub downloads live under
  :func:`attnviz.models.gguf_cache.cache_root`).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOSTED_ENV", "HOSTED_TEXT_CHARS", "is_hosted", "check_model_allowed", "cap_text"]

HOSTED_ENV = "ATTNVIZ_HOSTED"

HOSTED_TEXT_CHARS = 20_000
"""Characters of a text a hosted server reads (about 4 times the token cap's worth of English)."""

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
