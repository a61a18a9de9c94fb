"""Config schemas generated from components' own settings dataclasses (one schema per concept).

A component declares its settings once, as a frozen dataclass beside its code (``BacktestSettings``,
``SimSettings``, ...), with ranges and choices as field metadata (:mod:`engine.fields`). Hydra cannot
merge overrides into a frozen structured config (OmegaConf makes it read-only), so the schema stored in
the ConfigStore is a mutable copy with the same fields, defaults and metadata, plus ``_target_`` when the
node is built. The copy is made here, not written by hand, so the two can never drift.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def schema_from(settings: type, *, target: str | None = None, name: str | None = None,
                exclude: tuple[str, ...] = (), extra: tuple[tuple[str, Any, Any], ...] = ()) -> type:
    """A mutable dataclass with ``settings``' fields (minus ``exclude``), then ``extra`` fields given as
    ``(name, type, dataclasses.field(...))``, and a leading ``_target_`` field when ``target`` is given."""
    if not dataclasses.is_dataclass(settings):
        raise TypeError(f"{settings!r} is not a dataclass")
    hints = _resolved_hints(settings)
    spec: list[tuple[str, Any, Any]] = []
    if target is not None:
        spec.append(("_target_", str, dataclasses.field(default=target)))
    for f in dataclasses.fields(settings):
        if f.name in exclude or not f.init:
            continue
        copied = dataclasses.field(default=f.default, default_factory=f.default_factory,
                                   metadata=dict(f.metadata))
        spec.append((f.name, hints[f.name], copied))
    spec.extend(extra)
    cls = dataclasses.make_dataclass(name or f"{settings.__name__}Schema", spec)
    cls.__module__ = settings.__module__
    cls.__doc__ = f"Config schema generated from {settings.__module__}.{settings.__qualname__}."
    cls.__settings__ = settings  # type: ignore[attr-defined]
    return cls


def _resolved_hints(settings: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(settings)
