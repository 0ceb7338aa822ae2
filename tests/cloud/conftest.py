"""The Cloud path's fixtures: the bundled models' hub repositories, made from the project's own files.

SmolLM2's repository is the project's conversion of the bundled GGUF file (the converted-weights cache folder,
:mod:`attnviz.models.gguf_cache`), MiniLM's the bundled package's safetensors folder: so the hub copy must give
exactly the bundled numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attnviz.models.specs import MINILM, SMOLLM2

from .hub_stand_in import HubStandIn

ANY_ID = "attnviz-tests/any-encoder"
_NOT_SERVED = {"attnviz-cache.json"}  # the converted-weights cache's own marker file


def _repo_files(lm) -> dict[str, Path]:
    """The files of the folder the model was loaded from (its ``name_or_path``)."""
    folder = Path(lm.model.config._name_or_path)
    assert (folder / "model.safetensors").is_file(), f"{folder} is not a saved transformers model"
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and p.name not in _NOT_SERVED}


@pytest.fixture(scope="session")
def hub_repos(smollm2, minilm) -> dict[str, dict[str, Path]]:
    """hub id -> {file name: path}: the two bundled models in the hub's layout, under their spec hub ids, and
    MiniLM once more as ``ANY_ID``, a model that is not bundled (loaded as any hub id is)."""
    return {SMOLLM2.hub_id: _repo_files(smollm2), MINILM.hub_id: _repo_files(minilm), ANY_ID: _repo_files(minilm)}


@pytest.fixture()
def hub(hub_repos):
    """A running stand-in hub serving both repositories (stopped after the test)."""
    stand_in = HubStandIn(hub_repos).start()
    yield stand_in
    stand_in.stop()
