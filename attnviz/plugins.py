"""Registries of named plug-ins, and the user's own plug-in modules (``ATTNVIZ_PLUGINS``).

A plug-in is a frozen dataclass registered under its class attribute ``name``;
its fields are its parameters (:mod:`attnviz.params`).  Once registered it
appears wherever the built-in ones do: the CLI's choices and ``--param``, the
pages' lists and controls, the JSON rows.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from .budget import BudgetError
from .params import Param, ParamError, parameters

__all__ = ["Registry", "PluginError", "load_plugins", "PLUGINS_ENV"]

PLUGINS_ENV = "ATTNVIZ_PLUGINS"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

T = TypeVar("T")


class PluginError(RuntimeError):
    """A plug-in module that cannot be imported or a plug-in class that breaks the contract (one line)."""


class Registry(Mapping[str, type[T]], Generic[T]):
    """Name -> class of one kind of plug-in (``kind`` names it in messages, e.g. ``policy``)."""

    def __init__(self, kind: str, base: type[T]):
        self.kind, self.base = kind, base
        self._classes: dict[str, type[T]] = {}

    def __getitem__(self, name: str) -> type[T]:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: add ``cls`` under ``cls.name`` (re-registering the same class replaces it)."""
        name = getattr(cls, "name", None)
        where = f"{cls.__module__}.{cls.__qualname__}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(f"{where}: a {self.kind} needs a class attribute name made of lower-case letters, "
                              f"digits and _ (got {name!r})")
        if not issubclass(cls, self.base):
            raise PluginError(f"{where}: a {self.kind} must subclass {self.base.__name__}")
        if "__dataclass_fields__" not in vars(cls) or not cls.__dataclass_params__.frozen:
            raise PluginError(f"{where}: decorate the {self.kind} with @dataclass(frozen=True) under @register")
        if not isinstance(getattr(cls, "summary", None), str):
            raise PluginError(f"{where}: a {self.kind} needs a one-line class attribute summary")
        try:
            parameters(cls)
        except TypeError as exc:
            raise PluginError(str(exc)) from None
        old = self._classes.get(name)
        if old is not None and f"{old.__module__}.{old.__qualname__}" != where:
            raise PluginError(f"{where}: {self.kind} name '{name}' is already taken by "
                              f"{old.__module__}.{old.__qualname__}")
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test's or a reloaded module's plug-in); nothing happens if it is not there."""
        self._classes.pop(name, None)

    def cls_of(self, name: str) -> type[T]:
        """The class registered as ``name``; :class:`BudgetError` listing the known names otherwise."""
        cls = self._classes.get(name)
        if cls is None:
            raise BudgetError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self._classes)}")
        return cls

    def param(self, name: str, param: str) -> Param:
        """Parameter ``param`` of plug-in ``name``; :class:`ParamError` listing its parameters if it has none such."""
        by_name = {p.name: p for p in parameters(self.cls_of(name))}
        if param not in by_name:
            have = ", ".join(by_name) if by_name else "none"
            raise ParamError(f"{self.kind} '{name}' has no parameter '{param}' (its parameters: {have})")
        return by_name[param]

    def get(self, name: str, **params: Any) -> T:  # type: ignore[override]
        """An instance of the plug-in ``name`` with ``params``; :class:`BudgetError` for an unknown name or
        parameter (one line listing what there is).  Values are range-checked by the plug-in's ``validate``."""
        cls = self.cls_of(name)
        for key in params:
            self.param(name, key)
        return cls(**params)

    def from_text(self, name: str, params: dict[str, str]) -> T:
        """:meth:`get` with values given as text (command line, URL), parsed by each parameter's type."""
        values = {}
        for key, text in params.items():
            param = self.param(name, key)
            try:
                values[key] = param.parse(text)
            except ParamError as exc:
                raise ParamError(f"{self.kind} '{name}': {exc}") from None
        return self.get(name, **values)


def load_plugins(spec: str | None = None) -> list[str]:
    """Import the modules named in ``spec`` (default: the environment variable ``ATTNVIZ_PLUGINS``,
    comma separated), which register their plug-ins as they are imported.  Returns the module names.

    Raises :class:`PluginError` (one line) for a module that fails to import.
    """
    spec = os.environ.get(PLUGINS_ENV, "") if spec is None else spec
    names = [m.strip() for m in spec.split(",") if m.strip()]
    for module in names:
        try:
            importlib.import_module(module)
        except PluginError:
            raise
        except BaseException as exc:  # noqa: BLE001 (a plug-in's SystemExit or syntax error is still one line)
            if isinstance(exc, KeyboardInterrupt):
                raise
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise PluginError(f"cannot import plug-in module '{module}' (from {PLUGINS_ENV}): "
                              f"{type(exc).__name__}{': ' + detail if detail else ''}") from None
    return names
