"""Constrained dataclass fields, shared by components' frozen settings and the config schemas.

It lives at the package root, not in ``engine/config``, because pure layers declare their settings with
it and must not import the composition root.

Hydra checks types and unknown keys when it composes; ranges and choices are checked by
:func:`engine.config.validate.validate` from the metadata these helpers attach, so one short message
names the full key (``risk.max_drawdown``) before any data is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any


def bounded(default: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
            le: float | None = None) -> Any:
    """A numeric field with inclusive (ge/le) or exclusive (gt/lt) bounds."""
    return field(default=default, metadata={"bounds": {"gt": gt, "ge": ge, "lt": lt, "le": le}})


def choice(default: Any, options: Sequence[Any]) -> Any:
    """A field whose value must be one of ``options``."""
    return field(default=default, metadata={"choices": tuple(options)})
