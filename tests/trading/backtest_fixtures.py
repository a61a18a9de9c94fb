"""Small hand-made bars for the backtest tests (a point is 0.01 and one lot moves 1 per 1.0 of price)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from engine.trading.backtest import BacktestResult, BacktestSettings, run_backtest
from engine.trading.risk_rules import RiskLimits

# No cap from the risk limits unless a test sets one: the symbol's own volume_max applies.
NO_CAP = RiskLimits(max_position_size=1e9)
FREE = {"spread_bps": 0.0, "commission_bps": 0.0, "slippage_bps": 0.0}


def ohlc(opens: Sequence[float], highs: Sequence[float] | None = None, lows: Sequence[float] | None = None,
         closes: Sequence[float] | None = None, freq: str = "1min") -> pd.DataFrame:
    """Bars whose high/low default to the open +-0.5 (inside any stop used here) and close to the open."""
    o = np.asarray(opens, dtype="float64")
    h = np.asarray(highs, dtype="float64") if highs is not None else o + 0.5
    lo = np.asarray(lows, dtype="float64") if lows is not None else o - 0.5
    c = np.asarray(closes, dtype="float64") if closes is not None else o.copy()
    idx = pd.date_range("2024-01-01", periods=len(o), freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame({"open": o, "high": np.maximum(h, np.maximum(o, c)), "low": np.minimum(lo, np.minimum(o, c)),
                         "close": c}, index=idx)


def bt(signals: Sequence[float], bars: pd.DataFrame, limits: RiskLimits = NO_CAP, atr: np.ndarray | None = None,
       **settings: object) -> BacktestResult:
    s = BacktestSettings(**{"initial_equity": 10_000.0, "volume_max": 1e6, **settings})  # type: ignore[arg-type]
    seconds = (bars.index[1] - bars.index[0]).total_seconds() if len(bars) > 1 else 60.0
    return run_backtest(pd.Series(signals, index=bars.index, dtype="float64"), bars, s, bar_seconds=seconds,
                        limits=limits, atr=atr)
