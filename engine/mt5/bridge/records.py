"""Package records (named tuples, numpy scalars) as the contract's JSON-ready dicts."""

from __future__ import annotations

from typing import Any


def as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    return dict(obj)


def plain(value: Any) -> Any:
    """numpy scalars -> Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else value


def pick(record: dict[str, Any], fields: tuple[str, ...], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: plain(record.get(k, 0)) for k in fields + extra}
