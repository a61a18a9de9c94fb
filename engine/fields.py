"""Constrained dataclass fields, shared by components' frozen settings and the config schemas.

It lives at the package root, not in ``engine/config``, because pure layers declare their settings with
it and must not import the composition root.

Hydra checks types and unknown keys when it composes; ranges and choices are checked by
:func:`engine.config.validate.validate` from the metadata these helpers attach, so one short message
names the full key (``risk.max_drawdown``) before any data is touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field, fields
from typing import Any

from engine.errors import ConfigError


def bounded(default: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
            le: float | None = None) -> Any:
    """A numeric field with inclusive (ge/le) or exclusive (gt/lt) bounds."""
    return field(default=default, metadata={"bounds": {"gt": gt, "ge": ge, "lt": lt, "le": le}})


def choice(default: Any, options: Sequence[Any]) -> Any:
    """A field whose value must be one of ``options``."""
    return field(default=default, metadata={"choices": tuple(options)})


def bounded_items(default: Sequence[float], *, gt: float | None = None, ge: float | None = None,
                  lt: float | None = None, le: float | None = None) -> Any:
    """A sequence of numbers, each within the bounds (periods, layer sizes). The default is kept as a tuple
    because a dataclass default is shared by every instance."""
    return field(default=tuple(default), metadata={"item_bounds": {"gt": gt, "ge": ge, "lt": lt, "le": le}})


def choice_items(default: Sequence[Any], options: Sequence[Any]) -> Any:
    """A sequence whose every item is one of ``options``."""
    return field(default=tuple(default), metadata={"item_choices": tuple(options)})


_BOUND_CHECKS = (("gt", ">", lambda v, b: v > b), ("ge", ">=", lambda v, b: v >= b),
                 ("lt", "<", lambda v, b: v < b), ("le", "<=", lambda v, b: v <= b))


def _bound_problem(value: Any, bounds: Mapping[str, float | None]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, got {value!r}"
    active = [(name, sym, ok) for name, sym, ok in _BOUND_CHECKS if bounds.get(name) is not None]
    if all(ok(value, bounds[name]) for name, _, ok in active):
        return None
    allowed = " and ".join(f"{sym} {bounds[name]}" for name, sym, _ in active)
    return f"must be {allowed}, got {value!r}"


def problem(value: Any, metadata: Mapping[str, Any]) -> str | None:
    """What is wrong with ``value`` under a field's constraints, or None. ``None`` values pass: a field that
    may be off is typed ``X | None`` and its bounds apply when it is set."""
    if value is None:
        return None
    if "bounds" in metadata and (found := _bound_problem(value, metadata["bounds"])):
        return found
    if "choices" in metadata and value not in metadata["choices"]:
        return f"{value!r} is not allowed; choose one of {', '.join(map(str, metadata['choices']))}"
    if "item_choices" in metadata:
        for item in value:
            if item not in metadata["item_choices"]:
                return f"{item!r} is not allowed; items must be among {', '.join(map(str, metadata['item_choices']))}"
    if "item_bounds" in metadata:
        for item in value:
            if found := _bound_problem(item, metadata["item_bounds"]):
                return f"item {found}"
    return None


def check(settings: Any, group: str) -> None:
    """Raise :class:`engine.errors.ConfigError` naming ``<group>.<field>`` for the first field of the dataclass
    instance ``settings`` that breaks its constraints. Components call it from ``__post_init__``; the config
    layer applies :func:`problem` to the same metadata before any work, so both enforce one rule."""
    for f in fields(settings):
        if f.metadata and (found := problem(getattr(settings, f.name), f.metadata)):
            raise ConfigError(f"{group}.{f.name}", found)
