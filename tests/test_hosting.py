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
