"""Shared test setup: never touch the network; load each bundled model once per session; mark the tests.

Markers (registered in pyproject.toml; ``make test-fast`` leaves out all three):

* ``model``: the test loads a real model.  Applied here to every test that uses a model fixture
  (``MODEL_FIXTURES``), every page test (tests/pages: the pages load models through ``ui.cached``) except those
  using ``no_model_loading``, and every browser test.  Tests that load a model another way carry it by hand.
* ``browser``: the test drives the app in Chromium (tests/browser).  Applied here.
* ``slow``: the test takes more than about 5 s on a 2-core machine.  Applied here to the browser tests (3.5-20 s
  each, beside one shared server and Chromium) and to the tests using a fixture in ``SLOW_FIXTURES``.  A test
  slow for another reason carries ``@pytest.mark.slow``.
"""

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402
import torch  # noqa: E402

TESTS = Path(__file__).resolve().parent
# Fixtures that hold a real model: this file's four, and test_models.py's SmolLM2 read straight from its GGUF.
MODEL_FIXTURES = {"smollm2", "minilm", "smollm2_eager", "minilm_eager", "gguf_reference"}
# Fixtures that take over 5 s to make: the GGUF read dequantises SmolLM2 (11-13 s).
SLOW_FIXTURES = {"gguf_reference"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not item.path.is_relative_to(TESTS):
            continue
        folder = item.path.relative_to(TESTS).parts[0]
        if folder == "browser":
            for marker in (pytest.mark.browser, pytest.mark.model, pytest.mark.slow):
                item.add_marker(marker)
        elif folder == "pages" and "no_model_loading" not in item.fixturenames:
            item.add_marker(pytest.mark.model)
        elif MODEL_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.model)
        if SLOW_FIXTURES.intersection(item.fixturenames):
            item.add_marker(pytest.mark.slow)


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

    from attnviz.plugins import load_plugins
    from attnviz.policies import POLICIES

    monkeypatch.syspath_prepend(str(TESTS / "plugins"))
    monkeypatch.setenv("ATTNVIZ_PLUGINS", "every_other_policy")
    assert load_plugins() == ["every_other_policy"]
    yield POLICIES["every_other"]
    POLICIES.unregister("every_other")
    sys.modules.pop("every_other_policy", None)


@pytest.fixture
def no_model_loading(monkeypatch):
    """Loading any transformer model is a failure (for pages that must be instant; such tests are not ``model``)."""
    import attnviz.models
    import ui.cached

    def refuse(*args, **kwargs):
        raise AssertionError("this test must not load a model")

    monkeypatch.setattr(attnviz.models, "load_model", refuse)
    monkeypatch.setattr(ui.cached, "load_model", refuse)
