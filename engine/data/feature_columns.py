"""The numeric side of :class:`~engine.data.features.FeatureEngineering`: bar arrays in, feature columns out,
and the join of higher-timeframe columns onto the base bars once those bars have closed.

Kept apart from the feature set's settings so that importing ``engine.data.features`` (the ``features``
config schema is generated from that class) loads neither pandas nor the numba kernels: the class imports
this module on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from engine.data import indicators
from engine.data.frames import BAR_COLUMNS
from engine.errors import ConfigError, DataQualityError
from engine.timeframes import Timeframe, parse

if TYPE_CHECKING:
    from engine.data.features import FeatureEngineering

_NS_PER_DAY = 86_400 * 1_000_000_000


def bar_arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The OHLCV columns as float64 arrays, refusing bars that features cannot be computed on."""
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataQualityError(f"bars lack column(s) {missing}; expected {list(BAR_COLUMNS)}")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataQualityError("bars need a DatetimeIndex of bar open times (UTC); see engine.data.frames")
    if len(df) > 1 and not df.index.is_monotonic_increasing:
        raise DataQualityError("bars are not sorted by time; run DataCleaner (or conform_bars) first")
    arrays = {c: df[c].to_numpy(dtype=np.float64) for c in BAR_COLUMNS}
    for c, a in arrays.items():
        if not np.isfinite(a).all():
            raise DataQualityError(f"column {c!r} holds {int((~np.isfinite(a)).sum())} NaN/inf value(s); "
                                   "features need clean bars: run DataCleaner first")
    return arrays


def indicator_columns(fe: FeatureEngineering, a: dict[str, np.ndarray], index: pd.DatetimeIndex
                      ) -> dict[str, np.ndarray]:
    """The indicators ``fe`` asks for, raw (TA-Lib definitions), keyed by column name."""
    h, lo, c, v = a["high"], a["low"], a["close"], a["volume"]
    out: dict[str, np.ndarray] = {}
    moments: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def mean_var(n: int) -> tuple[np.ndarray, np.ndarray]:
        if n not in moments:
            moments[n] = indicators.rolling_mean_var(c, n)
        return moments[n]

    for n in fe.rsi:
        out[f"rsi_{n}"] = indicators.rsi(c, n)
    if fe.macd:
        fast, slow, signal = fe.macd
        line, sig, hist = indicators.macd(c, fast, slow, signal)
        tag = f"{fast}_{slow}_{signal}"
        out[f"macd_{tag}"], out[f"macd_signal_{tag}"], out[f"macd_hist_{tag}"] = line, sig, hist
    for n in fe.ema:
        out[f"ema_{n}"] = indicators.ema(c, n)
    for n in fe.sma:
        out[f"sma_{n}"] = mean_var(n)[0] if n in fe.bbands else indicators.sma(c, n)
    for n in fe.bbands:
        names = fe.bb_names(n)
        mid, var = mean_var(n)
        dev = fe.bb_std * np.sqrt(var)
        upper, lower = mid + dev, mid - dev
        out[names["upper"]], out[names["middle"]], out[names["lower"]] = upper, mid, lower
        span = upper - lower
        with np.errstate(divide="ignore", invalid="ignore"):
            # A flat window has no band: the close sits in its middle.
            out[names["pctb"]] = np.where(span > 0, (c - lower) / span, 0.5)
            out[names["width"]] = span / mid
        out[names["pctb"]][np.isnan(mid)] = np.nan
    for n in fe.atr:
        out[f"atr_{n}"] = indicators.atr(h, lo, c, n)
    for n in fe.vwap:
        out[f"vwap_{n}"] = indicators.vwap_rolling(h, lo, c, v, n)
    if fe.vwap_day:
        day = index.as_unit("ns").asi8 // _NS_PER_DAY
        out["vwap_day"] = indicators.vwap_anchored(h, lo, c, v, day)
    return out


def derived_columns(fe: FeatureEngineering, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Returns, log returns, volatility, volume ratios and the bar's range, keyed by column name."""
    h, lo, c, v = a["high"], a["low"], a["close"], a["volume"]
    size = len(c)
    out: dict[str, np.ndarray] = {}
    logc = np.log(c)
    for n in fe.returns:
        r = np.full(size, np.nan)
        r[n:] = c[n:] / c[:-n] - 1.0
        out[f"ret_{n}"] = r
    for n in fe.log_returns:
        r = np.full(size, np.nan)
        r[n:] = logc[n:] - logc[:-n]
        out[f"logret_{n}"] = r
    if fe.volatility:
        r1 = np.diff(logc)
        for n in fe.volatility:
            vol = np.full(size, np.nan)
            if len(r1) >= n:
                vol[1:] = np.sqrt(indicators.rolling_mean_var(r1, n)[1] * (n / (n - 1)))
            out[f"volatility_{n}"] = vol
    for n in fe.volume_ratio:
        mean = indicators.rolling_sum(v, n) / n
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"volume_ratio_{n}"] = np.where(mean > 0, v / mean, 0.0)
        out[f"volume_ratio_{n}"][np.isnan(mean)] = np.nan
    if fe.hl_range:
        out["hl_range"] = (h - lo) / c
    return out


def relative_levels(fe: FeatureEngineering, df: pd.DataFrame, close: np.ndarray) -> dict[str, np.ndarray]:
    """``<level>_rel = level / close - 1`` for each price-level indicator column present in ``df``."""
    return {f"{col}_rel": df[col].to_numpy(dtype=np.float64) / close - 1.0
            for col in fe.level_columns() if col in df.columns}


def timeframe_block(fe: FeatureEngineering, bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """Feature-only columns of one timeframe's bars, in a stable order, levels as ``fe.levels`` says."""
    a = bar_arrays(bars)
    raw = indicator_columns(fe, a, pd.DatetimeIndex(bars.index))
    levels = set(fe.level_columns())
    out: dict[str, np.ndarray] = {}
    c = a["close"]
    for name, values in raw.items():
        if name in levels:
            if fe.levels in ("raw", "both"):
                out[name] = values
            if fe.levels in ("relative", "both"):
                out[f"{name}_rel"] = values / c - 1.0
        else:
            out[name] = values
    out.update(derived_columns(fe, a))
    return out


def check_spacing(index: pd.DatetimeIndex, tf: Timeframe) -> None:
    """Refuse bars closer together than the declared base length: "closed" joins would leak the future."""
    if len(index) > 1:
        step = int(np.diff(index.as_unit("ns").asi8).min())
        if step < tf.seconds * 1_000_000_000:
            raise DataQualityError(f"bars are {pd.Timedelta(step)} apart but the base timeframe is "
                                   f"{tf.pandas}; set features.timeframes[0] to the bars' timeframe")


def join_closed(fe: FeatureEngineering, frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Each timeframe's feature block joined onto the first (base) frame's index, a higher-timeframe bar
    only from the base row whose bar closes when it closes (see ``FeatureEngineering.multi_timeframe``)."""
    if not frames:
        raise DataQualityError("multi_timeframe needs at least the base frame")
    items = list(frames.items())
    base_name, base = items[0]
    base_tf = parse(base_name, key="features.timeframes")
    base_index = pd.DatetimeIndex(base.index)
    check_spacing(base_index, base_tf)
    base_block = timeframe_block(fe, base)
    size = len(base_index)
    base_ns = base_index.as_unit("ns").asi8
    joins: list[tuple[str, dict[str, np.ndarray], np.ndarray, int]] = []
    for name, frame in items[1:]:
        tf = parse(name, key="features.timeframes")
        if tf.seconds <= base_tf.seconds:
            raise ConfigError("features.timeframes", f"{name} is not longer than the base {base_name}")
        htf_ns = pd.DatetimeIndex(frame.index).as_unit("ns").asi8
        available = htf_ns + (tf.seconds - base_tf.seconds) * 1_000_000_000
        pos = np.searchsorted(available, base_ns, side="right") - 1
        # pos is non-decreasing, so rows with no completed higher bar yet form a prefix.
        unknown = int(np.searchsorted(pos, 0, side="left"))
        joins.append((tf.mt5.lower(), timeframe_block(fe, frame), np.maximum(pos, 0), unknown))
    names = list(base_block) + [f"{prefix}_{col}" for prefix, block, _, _ in joins for col in block]
    # One (features, rows) buffer that the frame adopts without a copy: column writes are contiguous.
    matrix = np.empty((len(names), size))
    for i, values in enumerate(base_block.values()):
        matrix[i] = values
    row = len(base_block)
    for _, block, take, unknown in joins:
        for values in block.values():
            target = matrix[row]
            if len(values):
                np.take(values, take, out=target, mode="clip")  # 1-D and unbuffered: a fast gather
                target[:unknown] = np.nan
            else:
                target[:] = np.nan
            row += 1
    return pd.DataFrame(matrix.T, index=base.index, columns=names, copy=False)
