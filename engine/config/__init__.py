"""Config schemas, resolvers and the checked builder. Imported only by the composition root."""

from __future__ import annotations

import importlib
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

# Modules that contribute schemas: each exposes SCHEMAS = {group: {name: dataclass}}.
SCHEMA_MODULES: tuple[str, ...] = ("engine.config.schema",)
OPTIONAL_SCHEMA_MODULES: tuple[str, ...] = (
    "engine.config.groups_data",
    "engine.config.groups_model",
    "engine.config.groups_connector",
    "engine.config.groups_secrets",
    "engine.config.groups_trading",
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _schema_modules() -> list[object]:
    mods = [importlib.import_module(name) for name in SCHEMA_MODULES]
    for name in OPTIONAL_SCHEMA_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return mods


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore; the entry point calls this once before composing."""
    from engine.config.schema import Config

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for mod in _schema_modules():
        for group, options in getattr(mod, "SCHEMAS", {}).items():
            for name, node in options.items():
                cs.store(group=f"schema/{group}", name=name, node=node)


def register_resolvers() -> None:
    """OmegaConf resolvers engine's YAML uses. Safe to call more than once."""
    if not OmegaConf.has_resolver("engine_root"):
        OmegaConf.register_new_resolver("engine_root", lambda: str(PROJECT_ROOT))
    for mod in _schema_modules():
        hook = getattr(mod, "register_resolvers", None)
        if callable(hook):
            hook()
