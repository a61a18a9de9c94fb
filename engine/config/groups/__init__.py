"""One schema module per conf group, registered from the explicit list below (no optional imports: a
module that is listed and missing is an error at start-up, never a silently absent group).

Each module exposes ``SCHEMAS = {group: {option: schema}}`` (stored by Hydra's ConfigStore as
``schema/<group>/<option>``, which an option's YAML binds with ``/schema/<group>/<option>@_here_``) and,
optionally, ``register_resolvers()``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

GROUP_MODULES: tuple[str, ...] = (
    "paths", "source", "storage", "tracking", "task", "secrets", "connector", "cleaner", "features", "labels",
    "model", "trainer", "callbacks", "backtest", "risk", "sweep",
)


def modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in GROUP_MODULES]


def schemas() -> dict[str, dict[str, type]]:
    """Every group's options and their schemas, across all modules (``source`` has options in two)."""
    out: dict[str, dict[str, type]] = {}
    for module in modules():
        for group, options in module.SCHEMAS.items():
            out.setdefault(group, {}).update(options)
    return out
