"""Strict checks over a composed config, run before any work (:func:`validate`).

In the order a node is visited:

1. Every key is declared: by the node's schema (the option's dataclass; for an untyped node with a
   ``_target_``, the registered schema of that target, else the target's parameters). Hydra already refuses
   a plain typo while composing, but an append (``+cleaner.zscoree=3``, ``+foo=1``) slips into a schema node,
   and a node no schema describes (a group with no option selected) would take any key: both are refused
   here, naming the key and the nearest valid names.
2. Every ``_target_`` names something meant to be built (:mod:`engine.config.targets`).
3. Values: ranges and choices from the fields' metadata (:mod:`engine.fields`), then the schema's
   ``__validate__`` hook (cross-field rules; generated schemas construct the pure component itself), then
   mandatory values (``???``) that are still missing.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Collection, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from engine.config import CONF_DIR
from engine.config.targets import accepted_keys, resolve_target
from engine.errors import ConfigError
from engine.fields import problem

_MAX_LISTED = 20


def validate(cfg: DictConfig, *, values: bool = True) -> None:
    """Raise ConfigError naming the first invalid key of ``cfg`` (the composed config without its ``hydra``
    node). ``values=False`` checks keys and targets only (``--cfg job`` shows a config whose values may be
    incomplete)."""
    from engine.config.groups import schemas

    _Walk(schemas(), values).node(cfg, "", Any)
    task = cfg.get("task")
    if values and task is not None and task.get("register_as"):
        # checked here, not when the run ends: a sweep registers its best trial after every job has run
        from engine.tracking.registry import check_alias, check_name

        check_name(str(task.register_as))
        if task.get("register_alias") is not None:
            check_alias(str(task.register_alias))


def unknown_key(path: str, valid: Collection[str]) -> ConfigError:
    """The one error for a key no schema declares: the nearest valid names first, then all of them."""
    key = path.rsplit(".", 1)[-1]
    shown = sorted(v for v in valid if not v.startswith("_"))
    close = difflib.get_close_matches(key, shown, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    listed = ", ".join(shown[:_MAX_LISTED]) + (", ..." if len(shown) > _MAX_LISTED else "")
    return ConfigError(path, f"unknown key; {hint}valid keys: {listed}" if shown else "unknown key")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


def _is_mapping(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return isinstance(origin, type) and issubclass(origin, Mapping)


class _Walk:
    def __init__(self, groups: Mapping[str, Mapping[str, type]], values: bool) -> None:
        self.groups = groups
        self.values = values
        self.by_target: dict[str, type] = {}
        for options in groups.values():
            for schema in options.values():
                for f in dataclasses.fields(schema):
                    if f.name == "_target_" and isinstance(f.default, str):
                        self.by_target.setdefault(f.default, schema)

    def node(self, node: DictConfig, path: str, declared: Any) -> None:
        target = self._target(node, path)
        schema = self._schema(node, target)
        fields = {f.name: f for f in dataclasses.fields(schema)} if schema is not None else {}
        hints = typing.get_type_hints(schema) if schema is not None else {}
        self._keys(node, path, schema, fields, target, declared)
        for key in node:
            key = str(key)
            sub = _join(path, key)
            metadata = fields[key].metadata if key in fields else {}
            if self.values and metadata and not OmegaConf.is_missing(node, key):
                found = problem(_plain(node[key]), metadata)
                if found:
                    raise ConfigError(sub, found)
            if OmegaConf.is_interpolation(node, key):
                continue
            child = node._get_node(key)
            if isinstance(child, DictConfig) and not child._is_none():
                self.node(child, sub, hints.get(key, Any))
            elif isinstance(child, ListConfig) and not child._is_none():
                for i, item in enumerate(child):
                    if isinstance(item, DictConfig):
                        self.node(item, f"{sub}[{i}]", Any)
        if not self.values:
            return
        hook = getattr(schema, "__validate__", None)
        if callable(hook):
            hook(node, path)
        for key in node:
            if OmegaConf.is_missing(node, str(key)):
                raise ConfigError(_join(path, str(key)), f"must be set (it is ??? in the config), e.g. "
                                                         f"{_join(path, str(key))}=VALUE")

    def _target(self, node: DictConfig, path: str) -> str | None:
        if "_target_" not in node or OmegaConf.is_interpolation(node, "_target_"):
            return None
        target = str(node["_target_"])
        resolve_target(target, key=_join(path, "_target_"))
        return target

    def _schema(self, node: DictConfig, target: str | None) -> type | None:
        typed = OmegaConf.get_type(node)
        if typed is not None and dataclasses.is_dataclass(typed):
            return typed
        # An untyped node that builds a known component (source.store) is checked as that component's option.
        return self.by_target.get(target) if target is not None else None

    def _keys(self, node: DictConfig, path: str, schema: type | None, fields: Mapping[str, Any],
              target: str | None, declared: Any) -> None:
        if schema is not None:
            valid: Collection[str] | None = fields.keys()
        elif target is not None:
            valid = accepted_keys(resolve_target(target, key=_join(path, "_target_")))
        elif _is_mapping(declared):
            valid = None  # a declared free-form mapping
        else:
            valid = frozenset()
        if valid is None:
            return
        for key in node:
            if str(key) in valid:
                continue
            options = sorted(p.stem for p in (CONF_DIR / path).glob("*.yaml")) if path and not valid else []
            if options:
                raise ConfigError(_join(path, str(key)), f"unknown key: no {path} option is selected, so no "
                                                         f"{path} key is declared; pick one first: "
                                                         f"{' or '.join(f'{path}={o}' for o in options)}")
            raise unknown_key(_join(path, str(key)), valid)
