"""Replay data as arrays: one-minute bars, higher timeframes cut from them, and real quotes.

Times are epoch seconds (bars) or milliseconds (ticks) of broker server time, i.e. UTC + the offset,
as MT5 stamps them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.errors import InvalidRequestError

NS = 1_000_000_000


@dataclass
class BarSeries:
    """One timeframe's bars as arrays; ``first`` maps each bar to its first M1 row."""

    start_s: np.ndarray  # server-time open, epoch seconds
    first: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    seconds: int


def minute_series(bars: pd.DataFrame, offset_s: int) -> BarSeries:
    """UTC-indexed one-minute bars as a server-time series."""
    if len(bars) == 0:
        raise InvalidRequestError("the simulator got an empty bar frame")
    idx = pd.DatetimeIndex(bars.index).tz_convert("UTC").as_unit("ns")
    start_s = idx.asi8 // NS + offset_s
    vol = bars["volume"].to_numpy("float64") if "volume" in bars else np.zeros(len(bars))
    return BarSeries(start_s=start_s, first=np.arange(len(bars)),
                     open=bars["open"].to_numpy("float64"), high=bars["high"].to_numpy("float64"),
                     low=bars["low"].to_numpy("float64"), close=bars["close"].to_numpy("float64"),
                     volume=vol, seconds=60)


def coarser_series(m1: BarSeries, seconds: int) -> BarSeries:
    """Bars of ``seconds`` cut on server-time boundaries, as MT5 does (D1 = broker midnight)."""
    group = m1.start_s // seconds
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    return BarSeries(start_s=group[first] * seconds, first=first,
                     open=m1.open[first], high=np.maximum.reduceat(m1.high, first),
                     low=np.minimum.reduceat(m1.low, first), close=m1.close[np.r_[first[1:] - 1, len(group) - 1]],
                     volume=np.add.reduceat(m1.volume, first), seconds=seconds)


def bars_from_ticks(ticks: pd.DataFrame) -> pd.DataFrame:
    """One-minute bid bars from quotes (for a replay given only ticks)."""
    bid = ticks["bid"].astype("float64")
    ohlc = bid.resample("1min", label="left", closed="left").ohlc().dropna()
    ohlc["volume"] = bid.resample("1min").count().reindex(ohlc.index).astype("float64")
    return ohlc


def tick_arrays(ticks: pd.DataFrame, offset_s: int) -> dict[str, np.ndarray]:
    """UTC-indexed quotes as server-time arrays sorted by time: ms, bid, ask, last, volume."""
    idx = pd.DatetimeIndex(ticks.index).tz_convert("UTC").as_unit("ns")
    ms = idx.asi8 // 1_000_000 + offset_s * 1000
    order = np.argsort(ms, kind="stable")
    last = ticks["last"].to_numpy("float64") if "last" in ticks else np.zeros(len(ticks))
    vol = ticks["volume"].to_numpy("float64") if "volume" in ticks else np.zeros(len(ticks))
    return {"ms": ms[order], "bid": ticks["bid"].to_numpy("float64")[order],
            "ask": ticks["ask"].to_numpy("float64")[order], "last": np.nan_to_num(last[order]),
            "volume": np.nan_to_num(vol[order])}
