"""Shared test setup: never touch the network; load each bundled model once per session."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def smollm2():
    from attnviz.models import load_model

    return load_model("smollm2")


@pytest.fixture(scope="session")
def minilm():
    from attnviz.models import load_model

    return load_model("minilm")


@pytest.fixture(scope="session")
def smollm2_eager():
    """SmolLM2 with transformers' own eager attention (the reference our kernel must match)."""
    from attnviz.models import load_model

    return load_model("smollm2", attn_implementation="eager")


@pytest.fixture(scope="session")
def minilm_eager():
    """MiniLM with transformers' own eager attention."""
    from attnviz.models import load_model

    return load_model("minilm", attn_implementation="eager")


@pytest.fixture
def two_cores():
    """Two intra-op threads, so the side-by-side pool exists whatever the machine (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def every_other(monkeypatch):
    """The README's example plug-in (tests/plugins/every_other_policy.py) loaded through ATTNVIZ_PLUGINS, as a
    user's module is; removed afterwards, since the registry is global to the process."""
    import sys
    from pathlib import Path

    from attnviz.plugins import load_plugins
    from attnviz.policies import POLICIES

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    monkeypatch.setenv("ATTNVIZ_PLUGINS", "every_other_policy")
    assert load_plugins() == ["every_other_policy"]
    yield POLICIES["every_other"]
    POLICIES.unregister("every_other")
    sys.modules.pop("every_other_policy", None)
