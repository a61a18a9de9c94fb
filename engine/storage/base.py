from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd


@runtime_checkable
class Store(Protocol):
    """Upserting bar/tick storage. Writes are idempotent: writing the same rows twice stores them once,
    so ingestion can retry and resume without duplicates. A write is validated before anything is stored
    (impossible values raise one ``DataQualityError`` for the batch) and a failed write leaves stored rows
    unchanged."""

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


@runtime_checkable
class TickStore(Store, Protocol):
    """A store that also keeps ticks: what the ingestor writes to (ParquetStore and TimescaleDBClient)."""

    def write_ticks(self, ticks: pd.DataFrame, symbol: str) -> int:
        """Store conforming ticks; identical rows are stored once. Return how many rows were new."""
        ...

    def read_ticks(self, symbol: str, start: pd.Timestamp | None = None,
                   end: pd.Timestamp | None = None) -> pd.DataFrame: ...

    def last_timestamp(self, symbol: str, timeframe: str | None = None) -> pd.Timestamp | None:
        """Newest stored tick time (``timeframe=None``) or bar open time; None when nothing is stored."""
        ...
