from __future__ import annotations

from typing import Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class Store(Protocol):
    """Upserting bar/tick storage. Writes are idempotent: writing the same rows twice stores them once,
    so ingestion can retry and resume without duplicates. A failed write leaves stored rows unchanged."""

    def write_bars(self, bars: pd.DataFrame, symbol: str, timeframe: str) -> int:
        """Store conforming bars; return how many rows were new."""
        ...

    def read_bars(self, symbol: str, timeframe: str, start: pd.Timestamp | None = None,
                  end: pd.Timestamp | None = None) -> pd.DataFrame:
        """Bars with ``start <= timestamp < end`` as a conforming frame (empty if none)."""
        ...

    def latest_bar_time(self, symbol: str, timeframe: str) -> pd.Timestamp | None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...
