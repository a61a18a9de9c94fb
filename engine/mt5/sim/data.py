"""The simulator's data: real one-minute bars (the bundled sample by default) and real quotes.

The simulator takes its data as paths or frames. It does not import engine.sources: sources sit above the
MT5 adapter (``source=mt5`` reads bars through it), so the simulator reads the shared-data CSV layout
(``timestamp,open,high,low,close,volume``, UTC) itself, into the same bar contract (engine.data.frames).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from engine.data.frames import BAR_COLUMNS, conform_bars, to_utc
from engine.errors import DataQualityError, OperationalError
from engine.mt5.sim.settings import SimSettings

# The bundled real BTC/USDT sample (data/sample); tests check it is the file engine.sources.csv serves.
SAMPLE_BARS = Path(__file__).resolve().parents[3] / "data" / "sample" / "btcusdt_binance_1m_2024Q1.csv.gz"


def read_minute_bars(path: str | os.PathLike[str] | None = None, start: str | None = None,
                     end: str | None = None) -> pd.DataFrame:
    """Real 1-minute bars in ``[start, end)`` from a CSV in the shared-data layout (default: the sample)."""
    p = Path(path or SAMPLE_BARS)
    if not p.is_file():
        raise OperationalError(f"bar file not found: {p}; give the simulator a 1m bar CSV (bars_path)")
    raw = pd.read_csv(p, dtype={column: "float64" for column in BAR_COLUMNS})
    if "timestamp" not in raw.columns:
        raise DataQualityError(f"{p.name} has no 'timestamp' column; columns are {list(raw.columns)}")
    raw.index = pd.to_datetime(raw.pop("timestamp"), utc=True, format="ISO8601")
    bars = conform_bars(raw, what=p.name)
    if start is not None:
        bars = bars.loc[bars.index >= to_utc(start)]
    if end is not None:
        bars = bars.loc[bars.index < to_utc(end)]
    return bars


def read_quotes(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Top-of-book quotes (``timestamp,bid,ask,...``) as a UTC-indexed tick frame."""
    p = Path(path)
    if not p.is_file():
        raise OperationalError(f"quote file not found: {p}")
    raw = pd.read_csv(p)
    missing = {"timestamp", "bid", "ask"} - set(raw.columns)
    if missing:
        raise DataQualityError(f"{p.name} lacks column(s) {sorted(missing)}; expected timestamp,bid,ask,...")
    raw.index = pd.to_datetime(raw.pop("timestamp"), utc=True, format="ISO8601")
    vol = raw.get("bid_size", 0.0)
    return pd.DataFrame({"bid": raw["bid"].astype("float64"), "ask": raw["ask"].astype("float64"),
                         "volume": vol}, index=raw.index)


def market_data(settings: SimSettings) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(bars, ticks) named by ``settings``: the bar file (or the sample) unless only ticks are given."""
    bars = None
    if settings.bars_path or not settings.ticks_path:
        bars = read_minute_bars(settings.bars_path, settings.data_start, settings.data_end)
    ticks = read_quotes(settings.ticks_path) if settings.ticks_path else None
    return bars, ticks
