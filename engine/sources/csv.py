"""Bars from a CSV file in the shared-data layout: ``timestamp,open,high,low,close,volume`` (UTC, 'Z').

The bundled sample (data/sample) and the larger files used by tests and benchmarks share this layout.
A file holds one symbol at one timeframe, so ``load_bars`` checks the requested timeframe against the
file's spacing instead of trusting the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine import timeframes
from engine.data.frames import BAR_COLUMNS, conform_bars, to_utc
from engine.errors import DataQualityError, OperationalError

# pandas loads in the functions that use it: config validation imports this module (--cfg job stays light).
if TYPE_CHECKING:
    import pandas as pd

SAMPLE_PATH = Path(__file__).resolve().parents[2] / "data" / "sample" / "btcusdt_binance_1m_2024Q1.csv.gz"


@dataclass(frozen=True)
class CsvBarSource:
    path: str
    timeframe: str = "M1"
    start: str | None = None
    end: str | None = None

    def describe(self) -> str:
        return f"csv:{Path(self.path).name}"

    def load_bars(self, symbol: str, timeframe: str) -> pd.DataFrame:
        import pandas as pd

        want = timeframes.parse(timeframe)
        have = timeframes.parse(self.timeframe, key="source.timeframe")
        if want != have:
            raise OperationalError(
                f"{self.describe()} holds {have.mt5} bars but {want.mt5} were asked for; "
                f"use timeframe={have.mt5} and let FeatureEngineering resample to higher timeframes")
        path = Path(self.path)
        if not path.is_file():
            raise OperationalError(f"bar file not found: {path}. Check source.path (relative paths are from the "
                                   "project root).")
        raw = pd.read_csv(path, dtype={c: "float64" for c in BAR_COLUMNS})
        if "timestamp" not in raw.columns:
            raise DataQualityError(f"{path.name} has no 'timestamp' column; columns are {list(raw.columns)}")
        raw.index = pd.to_datetime(raw.pop("timestamp"), utc=True, format="ISO8601")
        bars = conform_bars(raw, what=path.name)
        if self.start is not None:
            bars = bars.loc[bars.index >= to_utc(self.start)]
        if self.end is not None:
            bars = bars.loc[bars.index < to_utc(self.end)]
        return bars
