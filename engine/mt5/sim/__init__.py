"""The MT5 simulator: real data replayed behind the REST contract, in process or as a command.

``Simulator`` (market + server), ``SimSettings`` (its one settings object), ``embedded_client``
(``connector=simulator``) and ``python -m engine.mt5.sim``. Names load on first use, so the config
schema can read SimSettings without importing pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.mt5.sim.embedded import EmbeddedSimulatorClient, Simulator, embedded_client
    from engine.mt5.sim.settings import DEV_TOKEN, SimSettings

_HOMES = {"DEV_TOKEN": "settings", "SimSettings": "settings", "Simulator": "embedded",
          "EmbeddedSimulatorClient": "embedded", "embedded_client": "embedded"}
__all__ = ["DEV_TOKEN", "EmbeddedSimulatorClient", "SimSettings", "Simulator", "embedded_client"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
