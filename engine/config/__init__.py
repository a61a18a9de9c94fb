"""Config schemas, resolvers, validation and the checked builder. Imported only by the composition root."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


def register_configs() -> None:
    """Store the root schema and every group's schemas in Hydra's ConfigStore; the entry point calls this
    once before composing."""
    from hydra.core.config_store import ConfigStore

    from engine.config.groups import schemas
    from engine.config.root import Config

    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, options in schemas().items():
        for name, node in options.items():
            store.store(group=f"schema/{group}", name=name, node=node)


def register_resolvers() -> None:
    """OmegaConf resolvers engine's YAML uses (``${engine_root:}``, ``${secret:name}``). Safe to call more
    than once."""
    from omegaconf import OmegaConf

    from engine.config.groups import modules

    if not OmegaConf.has_resolver("engine_root"):
        OmegaConf.register_new_resolver("engine_root", lambda: str(PROJECT_ROOT))
    for module in modules():
        hook = getattr(module, "register_resolvers", None)
        if hook is not None:
            hook()
