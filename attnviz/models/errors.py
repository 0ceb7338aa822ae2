"""The exceptions model loading raises, and how a foreign exception is quoted inside ours."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what failed and what to do about it."""


class NotFound(ModelLoadError):
    """Neither a local folder nor reachable on (or cached from) the Hugging Face hub."""


class BundleUnavailable(Exception):
    """A bundled model's weights could not be used; its hub copy is tried next."""


def short(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), for embedding in ours."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
