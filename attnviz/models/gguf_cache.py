"""The converted-weights cache: a GGUF file dequantised once, saved as float32 safetensors, loaded on later starts.

Dequantising is slow, loading the saved float32 model is fast, so :func:`load_or_build` keeps the conversion on
disk under ``cache_root() / <alias> / <sha256[:24]>-v<format>-transformers<version>``.  A folder is written
in a temporary sibling and renamed into place (atomic), and it counts only once its marker file
(``attnviz-cache.json``: format, source sha256, file sizes) is there and matches; anything else is rebuilt.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
import uuid
from typing import Any

import torch

from .errors import BundleUnavailable, short
from .weights import load_weights

logger = logging.getLogger(__name__)

_CACHE_FORMAT = 1
_MARKER = "attnviz-cache.json"  # written last: a folder without it (or with a wrong one) is never loaded
_STALE_SECONDS = 3600  # leftovers of crashed builds older than this are removed


class CacheInvalid(Exception):
    """A cache folder that must not be used (incomplete, stale or damaged)."""


def cache_root() -> pathlib.Path:
    """``$ATTNVIZ_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/attnviz``, else ``~/.cache/attnviz``."""
    own = os.environ.get("ATTNVIZ_CACHE_DIR")
    if own:
        return pathlib.Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says to ignore relative paths
        return pathlib.Path(xdg) / "attnviz"
    return pathlib.Path.home() / ".cache" / "attnviz"


def load_or_build(gguf: pathlib.Path, alias: str, auto_cls: Any, attn_implementation: str) -> tuple[Any, Any, bool]:
    """``(model, tokenizer, cache_hit)`` from the disk cache, (re)building it from the GGUF file if needed.

    ``alias`` names the cache's subfolder; ``auto_cls`` is the transformers auto class to build the model with.

    Raises:
        BundleUnavailable: the GGUF file cannot be read or converted (the caller tries the hub copy).
    """
    import transformers

    try:
        fingerprint = _source_fingerprint(gguf)
    except OSError as exc:
        raise BundleUnavailable(f"the bundled weights file {gguf} cannot be read ({short(exc)})") from exc
    folder = cache_root() / alias / f"{fingerprint[:24]}-v{_CACHE_FORMAT}-transformers{transformers.__version__}"

    if folder.exists():
        try:
            model, tokenizer = _load_cached(folder, fingerprint, auto_cls, attn_implementation)
            return model, tokenizer, True
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with it, the cure is a rebuild
            logger.warning("Converted-model cache %s is unusable (%s); rebuilding it.", folder, short(exc))
            _discard(folder)

    if importlib.util.find_spec("gguf") is None:
        raise BundleUnavailable("the Python package gguf (needed to read the bundled weights) is not installed")
    try:
        model, tokenizer = _convert_gguf(gguf, auto_cls, attn_implementation)
    except Exception as exc:  # noqa: BLE001 - reported, then the hub copy is tried
        raise BundleUnavailable(f"converting the bundled weights failed ({short(exc)})") from exc

    try:
        _write_cache(folder, model, tokenizer, fingerprint, gguf)
    except OSError as exc:
        logger.warning("Could not write the converted-model cache %s (%s); next start converts again.", folder, exc)
        return model, tokenizer, False
    try:  # load what later starts will load, so every start runs the very same model
        cached_model, cached_tokenizer = _load_cached(folder, fingerprint, auto_cls, attn_implementation)
    except Exception as exc:  # noqa: BLE001
        logger.warning("The freshly written cache %s does not load (%s); discarding it.", folder, short(exc))
        _discard(folder)
        return model, tokenizer, False
    return cached_model, cached_tokenizer, False


def _source_fingerprint(path: pathlib.Path) -> str:
    """Hex sha256 of the whole file: a changed file, even at the same size, rebuilds."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):  # 4 MiB reads
            digest.update(chunk)
    return digest.hexdigest()


def _convert_gguf(gguf: pathlib.Path, auto_cls: Any, attn_implementation: str) -> tuple[Any, Any]:
    """The slow path: transformers dequantises the GGUF file to float32."""
    from transformers import AutoTokenizer

    model = load_weights(auto_cls, gguf.parent, attn_implementation, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return model, tokenizer


def _load_cached(folder: pathlib.Path, fingerprint: str, auto_cls: Any, attn_implementation: str) -> tuple[Any, Any]:
    """The model and tokenizer saved in ``folder``, if its marker vouches for them; raises otherwise."""
    from transformers import AutoTokenizer

    try:
        marker = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheInvalid(f"no valid {_MARKER} (an interrupted build?)") from exc
    if marker.get("format") != _CACHE_FORMAT or marker.get("source", {}).get("sha256") != fingerprint:
        raise CacheInvalid("it was built from another source file or by another attnviz version")
    files = marker.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files:
        raise CacheInvalid(f"{_MARKER} lists no files")
    for file_name, size in files.items():  # sizes in bytes
        path = folder / file_name
        if not path.is_file() or path.stat().st_size != size:
            raise CacheInvalid(f"{file_name} is missing or has the wrong size")
    model = load_weights(auto_cls, folder, attn_implementation)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def _write_cache(folder: pathlib.Path, model: Any, tokenizer: Any, fingerprint: str, source: pathlib.Path) -> bool:
    """Write the converted model atomically; False if another process published the same folder first."""
    import safetensors.torch
    import transformers

    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder.parent)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights we save are plain float32
        config.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        # save_model stores the tied lm_head / embedding once; from_pretrained re-ties them.
        safetensors.torch.save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        files = {}
        for path in sorted(tmp.rglob("*")):
            if path.is_file():
                _fsync(path)
                files[path.relative_to(tmp).as_posix()] = path.stat().st_size
        marker = {
            "format": _CACHE_FORMAT,
            "source": {"file": source.name, "sha256": fingerprint, "size": source.stat().st_size},
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "files": files,
        }
        (tmp / _MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
        _fsync(tmp / _MARKER)
        return _publish(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _publish(tmp: pathlib.Path, folder: pathlib.Path) -> bool:
    """Rename the finished ``tmp`` to ``folder``; if another process got there first, keep theirs."""
    try:
        os.rename(tmp, folder)
    except OSError:
        if not folder.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True


def _discard(folder: pathlib.Path) -> None:
    """Remove a cache folder: first renamed aside (atomic), so nobody loads it half-deleted."""
    trash = folder.parent / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(folder, trash)
    except OSError:
        return  # already gone (another process discarded it)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale(parent: pathlib.Path) -> None:
    """Leftovers of builds that crashed (temp folders) or discards that were interrupted."""
    now = time.time()
    for path in parent.iterdir():
        if path.name.startswith((".tmp-", ".trash-")):
            try:
                if now - path.stat().st_mtime > _STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def _fsync(path: pathlib.Path) -> None:
    """Flush a written file to disk, so a crash cannot leave a published folder with empty files."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
