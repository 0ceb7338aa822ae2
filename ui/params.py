"""One control per parameter of a plug-in (a policy or an allocator), built from its fields' types and metadata,
kept in the URL.

A plug-in's parameters (``cls.parameters()``, :class:`attnviz.params.Parametrised`) become a
number box, a toggle, a choice or a text box.  Each is kept per page and per
plug-in under ``<prefix><group>.<plug-in>.<name>``, in the session and in the link: ``param.`` for a
policy's, ``alloc.`` for an allocator's.  The group keeps them apart from every page's own keys and
from each other (a policy and an allocator may share a parameter name).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import streamlit as st

from attnviz.params import Param, ParamError, Parametrised
from attnviz.policies import Policy

from .state import is_kept, persistent, remember, sync_url

__all__ = ["param_key", "policy_controls", "plugin_controls", "seed_param", "drop_other_params", "POLICY", "ALLOCATOR"]

POLICY, ALLOCATOR = "param", "alloc"
"""The groups of link keys: a policy's parameters (``param.``, as links have always said) and an allocator's."""
_KIND = {POLICY: "policy", ALLOCATOR: "allocator"}


def param_key(prefix: str, policy: str, name: str, group: str = POLICY) -> str:
    """Session and URL key of one parameter of one plug-in on one page (``prefix``: the page's, e.g. ``gen_``;
    ``group``: :data:`POLICY` or :data:`ALLOCATOR`)."""
    return f"{prefix}{group}.{policy}.{name}"


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


def drop_other_params(prefix: str, plugins: Collection[type[Parametrised]], group: str = POLICY) -> None:
    """Take out of the link every ``<prefix><group>.`` key that is not a parameter of one of ``plugins`` (the
    ones the page draws): another plug-in's parameters say nothing about this view.  Their values stay kept."""
    ours = {param_key(prefix, cls.name, p.name, group) for cls in plugins for p in cls.parameters()}
    sync_url(**dict.fromkeys(k for k in st.query_params if k.startswith(f"{prefix}{group}.") and k not in ours))


def policy_controls(cls: type[Policy], prefix: str = "", columns: list | None = None,
                    legacy: dict[str, str] | None = None) -> Policy:
    """Draw a control for each parameter of policy ``cls`` and return the policy with their values
    (:func:`plugin_controls` in the policies' group)."""
    return plugin_controls(cls, prefix, columns, legacy)


def plugin_controls(cls: type[Parametrised], prefix: str = "", columns: list | None = None,
                    legacy: dict[str, str] | None = None, group: str = POLICY, skip: Collection[str] = (),
                    values: dict[str, Any] | None = None) -> Parametrised:
    """Draw a control for each parameter of ``cls`` (in ``columns``, one each, cycling; else in the page)
    and return the plug-in with their values.

    A link's value that is not allowed is replaced by the default, and the page says so in the
    same words as the command line.  ``legacy`` maps a parameter to the URL key older links used.
    Parameters named in ``skip`` are left to the page, which draws its own control for them (a price slider)
    and passes their values in ``values``.  Other plug-ins' parameters are taken out of the link by
    :func:`drop_other_params`.
    """
    values = dict(values or {})
    drawn = [p for p in cls.parameters() if p.name not in skip]
    for i, p in enumerate(drawn):
        key = seed_param(cls, p, prefix, group, (legacy or {}).get(p.name))
        where = columns[i % len(columns)] if columns else st
        _draw(where, p, key)
        values[p.name] = st.session_state[key]
        sync_url(**{key: None if values[p.name] == p.default else _url_text(values[p.name])})
    return cls(**values)


def seed_param(cls: type[Parametrised], p: Param, prefix: str = "", group: str = POLICY,
               legacy: str | None = None) -> str:
    """Seed the session value of parameter ``p`` of ``cls`` (kept value, else the link's, else the default) and
    return its key; a page drawing its own control for it calls this first, then passes
    ``on_change=remember, args=(key,)``."""
    key = param_key(prefix, cls.name, p.name, group)
    value = p.default
    if not is_kept(key):  # first run in this session: the link decides
        value, problem = _from_link(key, p, legacy)
        if problem:
            st.warning(f"The link's {_KIND.get(group, 'plug-in')} '{cls.name}': {problem}; using {p.default} instead.")
    persistent(key, value)
    return key


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
