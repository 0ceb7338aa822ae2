"""KV-cache presses, native and per call, each equal to the NVIDIA kvpress press of the same name.

A press is a small frozen dataclass whose fields are its parameters, registered by name (as a policy is).
Built-in ones live one per file here; a user's own live in modules named in ``ATTNVIZ_PLUGINS``.
"""

from __future__ import annotations

from .base import Press, PressView, kept_count, pad_max, rotate_half, top_positions
from .registry import PRESSES, get_press, register

# Built-in presses register themselves on import, in this order (the order of lists in the app).
from .streaming_llm import StreamingLLM  # noqa: E402  isort: skip
from .snapkv import SnapKV  # noqa: E402  isort: skip
from .tova import TOVA  # noqa: E402  isort: skip
from .knorm import Knorm  # noqa: E402  isort: skip
from .observed_attention import ObservedAttention  # noqa: E402  isort: skip
from .expected_attention import ExpectedAttention  # noqa: E402  isort: skip
from .random import RandomPositions  # noqa: E402  isort: skip
from .pyramidkv import PyramidKV  # noqa: E402  isort: skip
from .adakv import AdaKV  # noqa: E402  isort: skip

__all__ = ["PRESSES", "Press", "PressView", "get_press", "register", "kept_count", "pad_max", "rotate_half",
           "top_positions", "StreamingLLM", "SnapKV", "TOVA", "Knorm", "ObservedAttention", "ExpectedAttention",
           "RandomPositions", "PyramidKV", "AdaKV"]
