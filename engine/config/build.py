"""Build components from config nodes: every ``_target_`` is resolved and checked first
(:mod:`engine.config.targets`), and the built object's type is checked after."""

from __future__ import annotations

from typing import Any, TypeVar

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from engine.config.targets import resolve_target
from engine.errors import ConfigError, EngineError

T = TypeVar("T")


def _targets(node: Any, path: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, DictConfig):
        for key in node:
            key = str(key)
            if OmegaConf.is_interpolation(node, key):
                continue
            child = node._get_node(key)
            sub = f"{path}.{key}" if path else key
            if key == "_target_":
                found.append((sub, str(node[key])))
            elif isinstance(child, DictConfig | ListConfig):
                found.extend(_targets(child, sub))
    elif isinstance(node, ListConfig):
        for i, child in enumerate(node):
            found.extend(_targets(child, f"{path}[{i}]"))
    return found


def build(node: DictConfig, expected: type[T] | tuple[type, ...], *, key: str, **kwargs: Any) -> T:
    """Instantiate ``node`` (a group's config) and check the result is an ``expected``."""
    for where, target in _targets(node, key):
        resolve_target(target, key=where)
    try:
        obj = instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__
        if isinstance(cause, EngineError):
            raise cause from None
        raise ConfigError(key, f"cannot build: {cause or exc}") from None
    if not isinstance(obj, expected):
        raise ConfigError(key, f"built {type(obj).__name__}, expected {expected}")
    return obj
