"""Range and choice checks over a composed config, driven by schema field metadata."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from engine.errors import ConfigError


def _bound_problem(value: Any, bounds: dict[str, float | None]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, got {value!r}"
    checks = (("gt", lambda b: value > b, ">"), ("ge", lambda b: value >= b, ">="),
              ("lt", lambda b: value < b, "<"), ("le", lambda b: value <= b, "<="))
    failed = [f"{sym} {bounds[name]}" for name, ok, sym in checks if bounds.get(name) is not None
              and not ok(bounds[name])]
    if failed:
        allowed = " and ".join(f"{sym} {bounds[n]}" for n, _, sym in checks if bounds.get(n) is not None)
        return f"must be {allowed}, got {value!r}"
    return None


def _check_field(path: str, value: Any, meta: dict[str, Any]) -> None:
    if value is None:
        return
    if "bounds" in meta and (problem := _bound_problem(value, meta["bounds"])):
        raise ConfigError(path, problem)
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(path, f"{value!r} is not allowed; choose one of {', '.join(map(str, meta['choices']))}")
    if "item_choices" in meta:
        for item in value:
            if item not in meta["item_choices"]:
                raise ConfigError(path, f"{item!r} is not allowed; items must be among "
                                        f"{', '.join(map(str, meta['item_choices']))}")
    if "item_bounds" in meta:
        for item in value:
            if problem := _bound_problem(item, meta["item_bounds"]):
                raise ConfigError(path, f"item {problem}")


def _walk(node: DictConfig, path: str) -> None:
    schema = OmegaConf.get_type(node)
    fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    for key in node:
        key = str(key)
        child_path = f"{path}.{key}" if path else key
        meta = dict(fields[key].metadata) if key in fields else {}
        if meta:
            # Only constrained fields are resolved here: secrets stay unresolved until used.
            value = node[key]
            plain = OmegaConf.to_container(value, resolve=True) if isinstance(value, ListConfig) else value
            _check_field(child_path, plain, meta)
            continue
        if OmegaConf.is_interpolation(node, key):
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none():
            _walk(child, child_path)
    hook = getattr(schema, "__validate__", None)
    if callable(hook):
        hook(node, path)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first invalid key of ``cfg``; return None when all checks pass."""
    _walk(cfg, "")
