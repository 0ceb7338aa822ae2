"""Parameters of plug-ins: a frozen dataclass's fields, described once for the CLI, the pages and validation.

A policy's parameters are its dataclass fields (as kvpress's presses' are). Each
field has a default; its ``metadata`` may say ``min``, ``max``, ``choices``,
``help`` and ``label`` (the short name used in labels, as ``S`` in ``S=4``).
From these, :func:`parameters` makes one :class:`Param` per field, which parses
command-line text, checks a value, and tells a page which control to draw.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass
from typing import Any

from .budget import BudgetError

__all__ = ["Param", "Parametrised", "parameters", "check_values", "ParamError", "SUPPORTED_TYPES"]

SUPPORTED_TYPES = (bool, int, float, str)


class ParamError(BudgetError):
    """A parameter value or name that is not allowed (message is user-facing, one line)."""


@dataclass(frozen=True)
class Param:
    """One parameter: its field's name, type (``bool``, ``int``, ``float`` or ``str``), default and limits."""

    name: str
    type: type
    default: Any
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    help: str = ""
    label: str = ""

    @property
    def symbol(self) -> str:
        """The name used in labels: ``label`` if given, else the field's name."""
        return self.label or self.name

    def allowed(self) -> str:
        """The allowed values in words, e.g. ``an integer from 0 to 1`` or ``one of: a, b``."""
        if self.choices is not None:
            return "one of: " + ", ".join(str(c) for c in self.choices)
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "text"}[self.type]
        if self.min is not None and self.max is not None:
            return f"{kind} from {self.min:g} to {self.max:g}"
        if self.min is not None:
            return f"{kind} of at least {self.min:g}"
        if self.max is not None:
            return f"{kind} of at most {self.max:g}"
        return kind

    def parse(self, text: str) -> Any:
        """The value of command-line or URL ``text``; :class:`ParamError` if it is not of this type."""
        text = text.strip()
        try:
            if self.type is bool:
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value: Any = lowered in ("true", "1", "yes")
            elif self.type is int:
                value = int(text)
            elif self.type is float:
                value = float(text)
            else:
                value = text
        except ValueError:
            raise ParamError(f"parameter {self.name} must be {self.allowed()}, got '{text}'") from None
        return value

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (one line), or None if it is."""
        bad = f"parameter {self.name} must be {self.allowed()}, got {value!r}"
        if self.type is bool:
            ok_type = isinstance(value, bool)
        elif self.type is int:
            ok_type = isinstance(value, int) and not isinstance(value, bool)
        elif self.type is float:
            ok_type = isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
        else:
            ok_type = isinstance(value, str)
        if not ok_type:
            return bad
        if self.choices is not None and value not in self.choices:
            return bad
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            return bad
        return None


@functools.cache
def parameters(cls: type) -> tuple[Param, ...]:
    """The parameters of a dataclass ``cls``, in field order; TypeError for a field that cannot be one."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = hints.get(f.name)
        if kind not in SUPPORTED_TYPES:
            raise TypeError(f"{cls.__name__}.{f.name}: a parameter must be a bool, int, float or str, not {kind}")
        if f.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: a parameter needs a default value")
        meta = f.metadata
        choices = meta.get("choices")
        out.append(Param(name=f.name, type=kind, default=f.default, min=meta.get("min"), max=meta.get("max"),
                         choices=None if choices is None else tuple(choices), help=meta.get("help", ""),
                         label=meta.get("label", "")))
    return tuple(out)


def check_values(owner: str, obj: Any) -> None:
    """Raise :class:`ParamError` naming ``owner`` (e.g. ``policy 'topk'``) if a field of ``obj`` is out of range."""
    for p in parameters(type(obj)):
        problem = p.problem(getattr(obj, p.name))
        if problem:
            raise ParamError(f"{owner}: {problem}")


class Parametrised:
    """Mixin for plug-ins whose dataclass fields are their parameters (policies, allocators)."""

    @classmethod
    def parameters(cls) -> tuple[Param, ...]:
        """The parameters (the dataclass's fields), in order."""
        return parameters(cls)

    def params(self) -> dict[str, Any]:
        """Every parameter's value, defaults included, in field order."""
        return {p.name: getattr(self, p.name) for p in self.parameters()}

    def param_labels(self) -> list[str]:
        """``S=4``-style parts of a label, one per parameter."""
        return [f"{p.symbol}={getattr(self, p.name)}" for p in self.parameters()]
