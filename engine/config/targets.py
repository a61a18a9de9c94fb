"""Which ``_target_`` may be built from config, decided on the object the path names, not on its spelling.

A target is *meant to be built* when it is a class or a plain Python function, public, and defined in an
``engine`` module (its ``__module__``). So a name that only passes through an engine module is refused:
``engine.storage.parquet.Path`` is pathlib's class, ``engine.secrets.formats.os.system`` is a builtin of the
``os`` module; so are modules, builtins, instances, private names and exception classes. Only paths that
start with ``engine.`` are imported at all, so a config can never make the engine import other code.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from engine.errors import ConfigError

# Keys Hydra's instantiate reads itself, allowed beside any target's parameters.
HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})
_ONLY = "only public classes and functions defined in engine may be built from config"


def _locate(path: str, key: str) -> Any:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module_name + ".").startswith(exc.name + ".") and cut > 1:
                continue  # not a module: the rest of the path is attributes of a shorter one
            raise
        for attr in parts[cut:]:
            if attr.startswith("_"):
                raise ConfigError(key, f"{path!r} names a private attribute ({attr}); {_ONLY}")
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise ConfigError(key, f"{path!r} does not exist: {'.'.join(parts[:cut])} has no "
                                       f"{attr!r}") from None
        return obj
    raise ConfigError(key, f"{path!r} does not exist")


def _refusal(obj: Any) -> str | None:
    if inspect.ismodule(obj):
        return "is a module"
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return f"is a {type(obj).__name__}, not a class or function"
    module = getattr(obj, "__module__", None) or ""
    if module != "engine" and not module.startswith("engine."):
        return f"is {module}.{obj.__qualname__}, defined outside engine"
    if obj.__name__.startswith("_"):
        return "is private"
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return "is an exception class"
    return None


def resolve_target(path: str, *, key: str) -> Callable[..., Any]:
    """The object ``path`` names, if it is meant to be built from config; else ConfigError naming ``key``."""
    if path != "engine" and not path.startswith("engine."):
        raise ConfigError(key, f"{path!r} is outside engine; {_ONLY}")
    obj = _locate(path, key)
    reason = _refusal(obj)
    if reason is not None:
        raise ConfigError(key, f"{path!r} {reason}; {_ONLY}")
    return obj


def accepted_keys(target: Callable[..., Any]) -> frozenset[str] | None:
    """The config keys ``target`` accepts (its keyword parameters and Hydra's own keys), or None when it takes
    ``**kwargs`` and so cannot tell a typo from an option."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return HYDRA_KEYS | {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
