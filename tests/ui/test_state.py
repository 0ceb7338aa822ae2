"""ui.state's link encoding of long texts (zlib + URL-safe base64 under ``textz``)."""

import base64
import zlib
from pathlib import Path

import pytest

from ui.state import URL_TEXTZ_LIMIT, LinkTextError, pack_text, unpack_text

LONG = "The keeper climbed the stairs at dusk and lit the lamp. " * 60  # 3,360 characters
CJK = "灯塔守护者每天黄昏爬上楼梯点亮灯。风很大，海很黑，但光一直在转。" * 60


@pytest.mark.parametrize("text", [LONG, CJK, "a", "emoji 🙂 and\nnew lines\t"])
def test_round_trip(text):
    packed = pack_text(text)
    assert packed is not None and len(packed) <= URL_TEXTZ_LIMIT
    assert set(packed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")  # no escaping
    assert unpack_text(packed) == text


def test_the_token_caps_worth_of_text_fits():
    """The bundled long essay (5,923 characters, 1,302 SmolLM2 tokens: more than the token cap) fits."""
    import attnviz

    text = (Path(attnviz.__file__).parent / "data" / "lighthouses.txt").read_text(encoding="utf-8")
    packed = pack_text(text)
    assert packed is not None and len(packed) < 0.6 * URL_TEXTZ_LIMIT
    assert unpack_text(packed) == text


def test_too_long_even_compressed():
    import random

    rng = random.Random(0)
    noise = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(20_000))  # compresses poorly
    assert pack_text(noise) is None


@pytest.mark.parametrize("bad", ["", "not base64!", "abc", base64.urlsafe_b64encode(b"plain bytes").decode(),
                                 base64.urlsafe_b64encode(zlib.compress(b"\xff\xfe broken utf-8")).decode(),
                                 base64.urlsafe_b64encode(zlib.compress(b"x" * 10_000_000)).decode()])
def test_malformed_values_raise_one_clear_error(bad):
    with pytest.raises(LinkTextError):
        unpack_text(bad)


def test_the_model_pickers_help_says_where_the_weights_come_from(monkeypatch):
    """Installed packages: "run offline"; a Cloud install (requirements.txt only) downloads from the hub and says so."""
    import ui.state as state

    monkeypatch.setattr(state, "package_installed", lambda spec: True)
    assert state._models_help().startswith("Both bundled models run offline.")
    monkeypatch.setattr(state, "package_installed", lambda spec: spec.alias != "minilm")
    assert "from the Hugging Face hub on first use" in state._models_help()
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in state._models_help()
    assert not any("bundled" in label for label in state.MODEL_LABELS.values())  # true on either install
