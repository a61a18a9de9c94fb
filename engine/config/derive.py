"""Config schemas generated from the components themselves (one schema per concept).

A component declares its settings once, beside its code: as the fields of a (frozen) settings dataclass
(``BacktestSettings``, ``LabelSpec``, ``DatasetSettings``), as the fields of the component when it is a
dataclass itself (``DataCleaner``, ``FeatureEngineering``), or, for an adapter that is neither, as the typed
parameters of its constructor (``TimescaleDBClient``). Ranges and choices are field metadata
(:mod:`engine.fields`). Hydra cannot merge overrides into a frozen structured config (OmegaConf makes it
read-only) and OmegaConf knows only a few types, so the schema stored in the ConfigStore is a generated,
mutable copy with the same names, defaults and metadata, the types OmegaConf can check, and ``_target_`` when
the node is built. The copy is made here, never written by hand, so the two cannot drift.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping, MutableSequence, Sequence
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

_PLAIN = (str, int, float, bool)
Check = Callable[[DictConfig, str], None]


@dataclasses.dataclass(frozen=True)
class _Spec:
    name: str
    hint: Any
    default: Any  # dataclasses.MISSING when the component has none
    default_factory: Any
    metadata: Mapping[str, Any]


def schema_from(component: type, *, target: str | None = None, name: str | None = None,
                exclude: tuple[str, ...] = (), defaults: Mapping[str, Any] | None = None,
                meta: Mapping[str, Mapping[str, Any]] | None = None, extra: type | None = None,
                check: Check | None = None, build_check: bool = False) -> type:
    """A mutable dataclass schema with ``component``'s settings.

    Args:
        component: a dataclass (its init fields) or a class with a typed ``__init__`` (its parameters).
        target: the ``_target_`` to build (a leading field); None for nodes that are read, not built.
        exclude: settings that do not come from config (``seq_len`` comes from the model group).
        defaults: config-level defaults that replace the component's (interpolations such as
            ``${paths.raw}``, or a value for a parameter the component requires).
        meta: constraints for settings of adapters that do not declare their own (``engine.fields``
            metadata, e.g. ``bounded(None, ge=1).metadata``), merged into the field's metadata.
        extra: a dataclass whose fields are config-only keys of the same node (``task.name``).
        check: a ``(node, path)`` hook run after the field checks (cross-field rules of the config).
        build_check: also construct ``component`` from the node while validating, so a pure component's
            own cross-field rules refuse a bad config before any work (only for components whose
            constructor does no I/O).
    """
    every = _settings(component)
    named = set(exclude) | set(defaults or ()) | set(meta or ())
    if named - {s.name for s in every}:
        # A renamed setting must fail here, at registration, not leave a stale default or bound behind.
        raise TypeError(f"{component.__qualname__} has no setting(s) {sorted(named - {s.name for s in every})}")
    specs = [s for s in every if s.name not in exclude]
    fields: list[tuple[str, Any, Any]] = []
    if target is not None:
        fields.append(("_target_", str, dataclasses.field(default=target)))
    for spec in specs:
        default = (defaults or {}).get(spec.name, spec.default)
        factory = spec.default_factory if spec.name not in (defaults or {}) else dataclasses.MISSING
        metadata = {**spec.metadata, **(meta or {}).get(spec.name, {})}
        fields.append((spec.name, _schema_type(spec.hint), _field(default, factory, metadata)))
    if extra is not None:
        hints = typing.get_type_hints(extra)
        for f in dataclasses.fields(extra):
            fields.append((f.name, _schema_type(hints[f.name]), _field(f.default, f.default_factory, f.metadata)))
    settings_names = tuple(s.name for s in specs)
    namespace = {"__validate__": staticmethod(_validator(component, settings_names, check, build_check))}
    cls = dataclasses.make_dataclass(name or f"{component.__name__}Config", fields, namespace=namespace)
    cls.__module__ = component.__module__
    cls.__doc__ = f"Config schema generated from {component.__module__}.{component.__qualname__}."
    cls.__settings__ = component  # type: ignore[attr-defined]
    return cls


def _settings(component: type) -> list[_Spec]:
    if dataclasses.is_dataclass(component):
        hints = typing.get_type_hints(component)
        return [_Spec(f.name, hints[f.name], f.default, f.default_factory, dict(f.metadata))
                for f in dataclasses.fields(component) if f.init]
    if not inspect.isclass(component):
        raise TypeError(f"{component!r} is neither a dataclass nor a class")
    hints = typing.get_type_hints(component.__init__)
    out = []
    for p in list(inspect.signature(component).parameters.values()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = dataclasses.MISSING if p.default is p.empty else p.default
        out.append(_Spec(p.name, hints.get(p.name, Any), default, dataclasses.MISSING, {}))
    return out


def _field(default: Any, factory: Any, metadata: Mapping[str, Any]) -> Any:
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=dict(metadata))
    if default is dataclasses.MISSING:
        return dataclasses.field(default=MISSING, metadata=dict(metadata))
    if isinstance(default, tuple | list | dict):
        # A container default must be a factory in a dataclass, and a list for OmegaConf.
        value = list(default) if isinstance(default, tuple) else default
        return dataclasses.field(default_factory=lambda: _copy(value), metadata=dict(metadata))
    return dataclasses.field(default=default, metadata=dict(metadata))


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else dict(value)


def _schema_type(hint: Any) -> Any:
    """The nearest type OmegaConf can check: sequences become lists, mappings dicts, a union that admits a
    string (``str | PathLike``) a string, anything else OmegaConf does not know ``Any``."""
    if hint is Any or hint in _PLAIN:
        return hint
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = str if str in options else (_schema_type(options[0]) if len(options) == 1 else Any)
        return inner | None if type(None) in args and inner is not Any else inner
    if origin in (list, tuple, Sequence, MutableSequence):
        item = args[0] if args and args[0] is not Ellipsis else Any
        return list[_schema_type(item)]
    if origin in (dict, Mapping):
        return dict[str, Any]
    if dataclasses.is_dataclass(hint):
        return hint
    return Any


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig | ListConfig) else value


def _validator(component: type, names: tuple[str, ...], check: Check | None, build_check: bool) -> Check:
    def validate(node: DictConfig, path: str) -> None:
        if check is not None:
            check(node, path)
        if build_check:
            component(**{n: _plain(node[n]) for n in names if n in node})

    return validate
