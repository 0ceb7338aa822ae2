"""Guards for a public server (issue #18): detection, local paths refused, text capped, no remote code."""

import ast
from pathlib import Path

import pytest

from attnviz import hosting
from attnviz.models import ModelLoadError, load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("flag,cwd,hosted", [("1", "/work", True), ("true", "/work", True),
                                             ("0", "/mount/src/app", False), ("", "/mount/src/app", True),
                                             ("", "/work", False)])
def test_hosting_is_detected(monkeypatch, flag, cwd, hosted):
    monkeypatch.setenv(hosting.HOSTED_ENV, flag)
    monkeypatch.setattr(hosting.Path, "cwd", classmethod(lambda cls: Path(cwd)))
    assert hosting.is_hosted() is hosted


@pytest.mark.parametrize("name", ["/etc", "./models/x", "~/m", str(ROOT)])
def test_a_hosted_server_refuses_local_paths_in_one_line(monkeypatch, name):
    monkeypatch.setenv(hosting.HOSTED_ENV, "1")
    with pytest.raises(ModelLoadError, match="does not load models from its own folders") as err:
        load_model(name)
    assert "\n" not in str(err.value)


def test_local_paths_load_when_not_hosted(monkeypatch, tmp_path):
    monkeypatch.setenv(hosting.HOSTED_ENV, "0")
    with pytest.raises(ModelLoadError) as err:  # an empty folder: refused for what it lacks, not for being a path
        load_model(str(tmp_path))
    assert "own folders" not in str(err.value)


def test_text_is_capped_in_characters_with_a_message(monkeypatch):
    monkeypatch.setenv(hosting.HOSTED_ENV, "1")
    text = "a" * (hosting.HOSTED_TEXT_CHARS + 5)
    cut, message = hosting.cap_text(text)
    assert len(cut) == hosting.HOSTED_TEXT_CHARS and "20,000 characters" in message and "20,005" in message
    assert hosting.cap_text("short") == ("short", None)
    monkeypatch.setenv(hosting.HOSTED_ENV, "0")
    assert hosting.cap_text(text) == (text, None)


def test_no_code_ever_trusts_a_repositorys_own_code():
    """``trust_remote_code`` would run a model repository's Python: no call in the app passes it."""
    for path in [*ROOT.glob("attnviz/**/*.py"), *ROOT.glob("ui/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword):
                assert node.arg != "trust_remote_code", f"{path}: trust_remote_code"


def test_sizes_are_capped_only_when_hosted_with_a_message(monkeypatch):
    monkeypatch.setenv(hosting.HOSTED_ENV, "1")
    assert hosting.cap(30, 40, "new tokens") == (30, None)
    value, message = hosting.cap(120, 40, "new tokens")
    assert value == 40 and "at most 40 new tokens" in message and "120" in message and "\n" not in message
    assert hosting.calibration_size(1024, 1.0) == (hosting.HOSTED_CALIBRATION_TOKENS, hosting.HOSTED_CALIBRATION_ROWS)
    assert hosting.calibration_size(16) == (16, None)
    monkeypatch.setenv(hosting.HOSTED_ENV, "0")
    assert hosting.cap(120, 40, "new tokens") == (120, None)
    assert hosting.calibration_size(1024, 1.0) == (1024, 1.0)


def test_caps_fit_the_defaults():
    """The caps bound what a visitor can ask for, not the default view (token cap 256, 6 policies x 8 sizes, 40
    new tokens on Generate, 20 on Compress, marginal's default rows)."""
    from attnviz.allocators import ALLOCATORS
    from attnviz.policies import POLICIES

    assert hosting.HOSTED_SWEEP_TOKENS >= 256 and hosting.HOSTED_CALIBRATION_TOKENS >= 256
    builtin = [p for p, cls in POLICIES.items() if not cls.reference and cls.__module__.startswith("attnviz.")]
    assert hosting.HOSTED_SWEEP_BUDGETS >= 8 * len(builtin)
    assert hosting.HOSTED_NEW_TOKENS >= 40
    assert hosting.HOSTED_CALIBRATION_ROWS >= ALLOCATORS["marginal"]().rows


@pytest.mark.parametrize("name", ["marginal", "duo"])
def test_a_hosted_calibration_is_capped_in_tokens_and_rows(monkeypatch, tmp_path, smollm2, name):
    """A public server calibrates on at most HOSTED_CALIBRATION_TOKENS tokens, marginal on at most
    HOSTED_CALIBRATION_ROWS of its rows (here lowered so that the test stays short)."""
    from attnviz.allocators import duo, get_allocator, marginal
    from attnviz.allocators.calibration import shipped_text
    from attnviz.budget import Budget
    from attnviz.measure import encode_for, reference_pass
    from attnviz.measure.passes import plan_budgets

    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(hosting.HOSTED_ENV, "1")
    monkeypatch.setattr(hosting, "HOSTED_CALIBRATION_TOKENS", 12)
    monkeypatch.setattr(hosting, "HOSTED_CALIBRATION_ROWS", 0.5)
    seen = []
    monkeypatch.setattr(marginal, "value_curves", lambda lm, text, n, progress, share, f=marginal.value_curves:
                        seen.append((n, share)) or f(lm, text, n, progress, share))
    monkeypatch.setattr(duo, "head_distances", lambda lm, text, n, sinks, f=duo.head_distances:
                        seen.append((n, None)) or f(lm, text, n, sinks))
    ref = reference_pass(smollm2, encode_for(smollm2, shipped_text("lighthouses"), 20))
    budget = (Budget("topk", keys=4, allocator=get_allocator("marginal", rows=1.0)) if name == "marginal"
              else Budget("sink_window", keys=12, allocator=get_allocator("duo", retrieval=0.1)))
    planned = plan_budgets(smollm2, ref, [budget])[0]
    assert seen == [(12, 0.5 if name == "marginal" else None)]
    if name == "marginal":
        assert planned.plan["calibration_tokens"] == 12
        assert planned.plan["calibration_rows"] == marginal.calibration_rows(12, 0.5)
    assert len(planned.layer_keys) == ref.shape.layers
