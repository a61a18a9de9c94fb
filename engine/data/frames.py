"""The bar and tick frame contracts every component exchanges (see docs/data_contracts.md).

Bars: a ``DatetimeIndex`` named ``timestamp`` in UTC holding each bar's **open** time, strictly
increasing, and float64 columns ``open, high, low, close, volume``. Ticks: the same index (tick time)
with float64 ``bid, ask`` and ``volume`` (``last`` optional).

pandas is imported inside the functions: the column names here are read by modules the config schemas are
generated from, and importing those must stay light (``python -m engine --cfg job``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from engine.errors import DataQualityError

if TYPE_CHECKING:
    import pandas as pd

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
TICK_COLUMNS: tuple[str, ...] = ("bid", "ask", "volume")


def _utc_index(index: pd.Index, what: str) -> pd.DatetimeIndex:
    import pandas as pd

    if not isinstance(index, pd.DatetimeIndex):
        raise DataQualityError(f"{what} need a DatetimeIndex of bar open times; got {type(index).__name__}. "
                               "Set it with df.set_index(pd.to_datetime(df['timestamp'], utc=True)).")
    if index.tz is None:
        raise DataQualityError(f"{what} have a timezone-naive index; engine works in UTC. "
                               "Localise it first: df.index = df.index.tz_localize('UTC') (or tz_convert if it is "
                               "broker time).")
    return index.tz_convert("UTC")


def conform_bars(df: pd.DataFrame, *, what: str = "bars") -> pd.DataFrame:
    """Return a copy that meets the bar contract, or raise DataQualityError naming what is wrong.

    Sorting is done here; duplicate timestamps are refused rather than silently dropped, because
    which of two different bars is right is a cleaning decision (DataCleaner), not a format one.
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataQualityError(f"{what} lack column(s) {missing}; expected {list(BAR_COLUMNS)}")
    out = df.loc[:, list(BAR_COLUMNS)].astype("float64")
    out.index = _utc_index(df.index, what)
    out.index.name = "timestamp"
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    if out.index.has_duplicates:
        dup = out.index[out.index.duplicated()][0]
        raise DataQualityError(f"{what} hold duplicate timestamps (first: {dup.isoformat()}); "
                               "deduplicate with DataCleaner before storing")
    return out


def conform_ticks(df: pd.DataFrame, *, what: str = "ticks") -> pd.DataFrame:
    """Return a copy that meets the tick contract (duplicates allowed: ticks may share a millisecond)."""
    missing = [c for c in TICK_COLUMNS if c not in df.columns]
    if missing:
        raise DataQualityError(f"{what} lack column(s) {missing}; expected {list(TICK_COLUMNS)}")
    cols = list(TICK_COLUMNS) + (["last"] if "last" in df.columns else [])
    out = df.loc[:, cols].astype("float64")
    out.index = _utc_index(df.index, what)
    out.index.name = "timestamp"
    if not out.index.is_monotonic_increasing:
        out = out.sort_index(kind="stable")
    return out


@dataclass(frozen=True)
class BarSummary:
    rows: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    expected: int
    missing: int
    gaps: int
    largest_gap: pd.Timedelta

    def lines(self) -> list[str]:
        if self.rows == 0:
            return ["rows: 0"]
        return [
            f"rows: {self.rows:,}",
            f"range: {self.start.isoformat()} .. {self.end.isoformat()} (UTC, bar open times)",
            f"missing bars: {self.missing:,} of {self.expected:,} in {self.gaps:,} gap(s); "
            f"largest gap {self.largest_gap}",
        ]


def summarize_bars(bars: pd.DataFrame, bar: pd.Timedelta | timedelta) -> BarSummary:
    """Rows, range and gaps of a conforming bar frame sampled every ``bar``."""
    import numpy as np
    import pandas as pd

    bar = pd.Timedelta(bar)
    idx = pd.DatetimeIndex(bars.index).as_unit("ns")
    if len(idx) == 0:
        return BarSummary(0, None, None, 0, 0, 0, pd.Timedelta(0))
    steps = np.diff(idx.asi8) // bar.value if len(idx) > 1 else np.zeros(0, dtype=np.int64)
    holes = steps[steps > 1] - 1
    expected = int((idx[-1] - idx[0]) // bar) + 1
    largest = pd.Timedelta(int(holes.max()) * bar.value) if holes.size else pd.Timedelta(0)
    return BarSummary(
        rows=len(idx), start=idx[0], end=idx[-1], expected=expected,
        missing=int(holes.sum()), gaps=int(holes.size), largest_gap=largest,
    )


def to_utc(value: str | pd.Timestamp) -> pd.Timestamp:
    """A timestamp in UTC; naive input is read as UTC (engine's documented convention)."""
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def fingerprint(frame: pd.DataFrame) -> str:
    """A stable content hash of a frame (index, columns and values) for MLflow's data tag."""
    import hashlib

    import pandas as pd

    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return digest.hexdigest()[:16]
