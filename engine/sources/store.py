"""Bars read back from a store (Parquet under data/raw, or TimescaleDB)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import OperationalError
from engine.storage.base import Store

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class StoreBarSource:
    store: Store
    start: str | None = None
    end: str | None = None

    def describe(self) -> str:
        return self.store.describe()

    def load_bars(self, symbol: str, timeframe: str) -> pd.DataFrame:
        bars = self.store.read_bars(symbol, timeframe, self.start, self.end)
        if bars.empty:
            raise OperationalError(
                f"{self.describe()} holds no {symbol} {timeframe} bars"
                f"{' in the requested range' if self.start or self.end else ''}; "
                "run `python -m engine task=prepare` (or task=ingest) first")
        return bars
