"""Real-time ingestion: :class:`DataIngestor` reads ticks and closed bars from an MT5 feed into a store.

Importing this package is cheap: the names below load on first use, so the settings modules (the task
config schema is generated from them) do not pull in the ingestor, its polls and pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.ingest.ingestor import COUNTERS, Cleaner, DataIngestor
    from engine.ingest.poll import Feed
    from engine.ingest.settings import IngestSettings

__all__ = ["COUNTERS", "Cleaner", "DataIngestor", "Feed", "IngestSettings"]
_HOMES = {"COUNTERS": "ingestor", "Cleaner": "ingestor", "DataIngestor": "ingestor", "Feed": "poll",
          "IngestSettings": "settings"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"engine.ingest.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'engine.ingest' has no attribute {name!r}")
