"""One control per parameter of a policy or a press, built from its fields' types and metadata, kept in the URL.

A plug-in's parameters (:meth:`attnviz.params.Parametrised.parameters`: a policy's or a press's) become a
number box, a toggle, a choice or a text box.  Each is kept per page and per
plug-in under ``<prefix>param.<name>.<parameter>``, in the session and in the link:
the ``param.`` part keeps it apart from every page's own keys.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import streamlit as st

from attnviz.params import Param, ParamError, Parametrised
from attnviz.presses import Press

from .state import is_kept, persistent, remember, sync_url

__all__ = ["param_key", "policy_controls", "press_controls", "drop_other_params"]


def param_key(prefix: str, policy: str, name: str) -> str:
    """Session and URL key of one parameter of one policy on one page (``prefix``: the page's, e.g. ``gen_``)."""
    return f"{prefix}param.{policy}.{name}"


def _from_link(key: str, p: Param, legacy: str | None) -> tuple[Any, str | None]:
    """The value a link asks for (or the default), and why it was refused if it was."""
    raw = st.query_params.get(key)
    if raw is None and legacy is not None:  # links made before parameters had their own keys
        raw = st.query_params.get(legacy)
    if raw is None:
        return p.default, None
    try:
        value = p.parse(raw)
    except ParamError as exc:
        return p.default, str(exc)
    problem = p.problem(value)
    return (p.default, problem) if problem else (value, None)


def drop_other_params(prefix: str, policies: Collection[type[Parametrised]]) -> None:
    """Take out of the link every ``<prefix>param.`` key that is not a parameter of one of ``policies`` (the
    ones the page draws): another policy's parameters say nothing about this view.  Their values stay kept."""
    ours = {param_key(prefix, cls.name, p.name) for cls in policies for p in cls.parameters()}
    sync_url(**dict.fromkeys(k for k in st.query_params if k.startswith(f"{prefix}param.") and k not in ours))


def policy_controls(cls: type[Parametrised], prefix: str = "", columns: list | None = None,
                    legacy: dict[str, str] | None = None) -> Parametrised:
    """Draw a control for each parameter of ``cls`` (a policy or a press; in ``columns``, one each, cycling;
    else in the page) and return the plug-in with their values.

    A link's value that is not allowed is replaced by the default, and the page says so in the
    same words as the command line.  ``legacy`` maps a parameter to the URL key older links used.
    Other policies' parameters are taken out of the link by :func:`drop_other_params`.
    """
    values = {}
    for i, p in enumerate(cls.parameters()):
        key = param_key(prefix, cls.name, p.name)
        value = p.default
        if not is_kept(key):  # first run in this session: the link decides
            value, problem = _from_link(key, p, (legacy or {}).get(p.name))
            if problem:
                kind = "press" if issubclass(cls, Press) else "policy"
                st.warning(f"The link's {kind} '{cls.name}': {problem}; using {p.default} instead.")
        persistent(key, value)
        where = columns[i % len(columns)] if columns else st
        _draw(where, p, key)
        values[p.name] = st.session_state[key]
        sync_url(**{key: None if values[p.name] == p.default else _url_text(values[p.name])})
    return cls(**values)


def press_controls(cls: type[Press], prefix: str, columns: list | None = None) -> Press:
    """:func:`policy_controls` for a press (the same controls, keys and link handling)."""
    return policy_controls(cls, prefix=prefix, columns=columns)


def _label(p: Param) -> str:
    name = p.name.replace("_", " ").capitalize()
    return f"{name} {p.label}" if p.label else name


def _help(p: Param) -> str:
    return f"{p.help + '. ' if p.help else ''}Allowed: {p.allowed()}; default {p.default}."


def _draw(where, p: Param, key: str) -> None:
    common = dict(key=key, on_change=remember, args=(key,), help=_help(p))
    if p.choices is not None:
        where.selectbox(_label(p), list(p.choices), **common)
    elif p.type is bool:
        where.toggle(_label(p), **common)
    elif p.type in (int, float):
        lo = None if p.min is None else p.type(p.min)
        hi = None if p.max is None else p.type(p.max)
        step = 1 if p.type is int else None
        where.number_input(_label(p), min_value=lo, max_value=hi, step=step, **common)
    else:
        where.text_input(_label(p), **common)


def _url_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
