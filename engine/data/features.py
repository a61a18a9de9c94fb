"""FeatureEngineering: causal indicator and derived features on bars, across timeframes.

Column names are stable and documented in docs/features.md. Every value at row t uses only bars whose
close is at or before the close of bar t; higher-timeframe features join onto a base bar only once the
higher-timeframe bar has closed (a 5-minute bar opening at 12:00 is joined from the 1-minute bar opening at
12:04, which closes at 12:05).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field

import numpy as np
import pandas as pd

from engine.data import indicators as ind
from engine.data.frames import BAR_COLUMNS
from engine.errors import ConfigError, DataQualityError
from engine.fields import bounded, bounded_items, check, choice
from engine.timeframes import Timeframe, parse

LEVELS = ("raw", "relative", "both")
PERIOD_FIELDS = ("rsi", "ema", "sma", "macd", "bbands", "atr", "vwap", "returns", "log_returns", "volatility",
                 "volume_ratio")
_NS_PER_DAY = 86_400 * 1_000_000_000


def _fmt(value: float) -> str:
    text = f"{value:g}"
    return text.replace(".", "p").replace("-", "m")


def resample_bars(bars: pd.DataFrame, timeframe: str | Timeframe) -> pd.DataFrame:
    """OHLCV bars aggregated to ``timeframe`` on UTC boundaries, labelled by bar open time.

    Bins holding no base bar are absent (nothing is invented); a bin is built from the base bars it
    holds, so the last one may be partial: see :meth:`FeatureEngineering.multi_timeframe` for why that
    never leaks.
    """
    tf = timeframe if isinstance(timeframe, Timeframe) else parse(timeframe, key="features.timeframes")
    if tf.mt5 == "MN1":
        raise ConfigError("features.timeframes", "MN1 has no fixed length; use W1 or shorter")
    width = tf.seconds * 1_000_000_000
    ns = pd.DatetimeIndex(bars.index).as_unit("ns").asi8
    if len(ns) == 0:
        return bars.loc[:, list(BAR_COLUMNS)].iloc[0:0].copy()
    bins = ns // width
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    ends = np.r_[starts[1:], len(ns)] - 1
    cols = {c: bars[c].to_numpy(dtype=np.float64) for c in BAR_COLUMNS}
    out = pd.DataFrame(
        {
            "open": cols["open"][starts],
            "high": np.maximum.reduceat(cols["high"], starts),
            "low": np.minimum.reduceat(cols["low"], starts),
            "close": cols["close"][ends],
            "volume": np.add.reduceat(cols["volume"], starts),
        },
        index=pd.DatetimeIndex(bins[starts] * width, tz="UTC", name="timestamp").as_unit("ns"),
    )
    return out


@dataclass(eq=False, repr=False)
class FeatureEngineering:
    """Indicators, derived features and higher-timeframe joins from one feature-set config.

    Periods are lists so a set can hold several (``ema=[20, 50]``); an empty list switches a family off.
    ``levels`` says how price-level indicators (EMA, SMA, Bollinger bands, VWAP) appear in
    :meth:`transform`: ``raw`` prices, ``relative`` to close (``ema_20_rel = ema_20 / close - 1``, the
    default: scale-free across years), or ``both``. The fields are the feature set's settings, bounds
    included; the ``features`` config schema is generated from them.
    """

    timeframes: Sequence[str] = ("1min",)
    _: KW_ONLY
    rsi: Sequence[int] = bounded_items((14,), ge=1)
    ema: Sequence[int] = bounded_items((20,), ge=1)
    sma: Sequence[int] = bounded_items((20,), ge=1)
    macd: Sequence[int] = bounded_items((12, 26, 9), ge=1)
    bbands: Sequence[int] = bounded_items((20,), ge=2)
    bb_std: float = bounded(2.0, gt=0.0)
    atr: Sequence[int] = bounded_items((14,), ge=1)
    vwap: Sequence[int] = bounded_items((60,), ge=1)
    vwap_day: bool = True
    returns: Sequence[int] = bounded_items((1, 5, 15), ge=1)
    log_returns: Sequence[int] = bounded_items((1,), ge=1)
    volatility: Sequence[int] = bounded_items((30,), ge=2)
    volume_ratio: Sequence[int] = bounded_items((60,), ge=1)
    hl_range: bool = True
    levels: str = choice("relative", LEVELS)
    feature_names_: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        timeframes = [self.timeframes] if isinstance(self.timeframes, str) else list(self.timeframes)
        if not timeframes:
            raise ConfigError("features.timeframes", "needs at least the base timeframe, e.g. ['1min']")
        self.timeframes = [str(t) for t in timeframes]
        self._tfs = [parse(t, key="features.timeframes") for t in self.timeframes]
        base = self._tfs[0]
        for tf in self._tfs[1:]:
            if tf.seconds <= base.seconds or tf.seconds % base.seconds:
                raise ConfigError("features.timeframes", f"{tf.pandas} must be a whole multiple (> 1) of the "
                                                         f"base timeframe {base.pandas}")
        if len({tf.mt5 for tf in self._tfs}) != len(self._tfs):
            raise ConfigError("features.timeframes", f"duplicate timeframe in {self.timeframes}")
        if self.macd and len(self.macd) != 3:
            raise ConfigError("features.macd", f"needs [fast, slow, signal] periods >= 1 or [], got {list(self.macd)}")
        check(self, "features")
        for name in PERIOD_FIELDS:
            values = getattr(self, name)
            bad = [p for p in values if int(p) != p]
            if bad:
                raise ConfigError(f"features.{name}", f"periods must be integers >= 1, got {bad}")
            setattr(self, name, [int(p) for p in values])
        self.bb_std = float(self.bb_std)
        self.vwap_day = bool(self.vwap_day)
        self.hl_range = bool(self.hl_range)

    # -- names --------------------------------------------------------------------------------------
    def _bb_names(self, n: int) -> dict[str, str]:
        tag = f"{n}_{_fmt(self.bb_std)}"
        return {part: f"bb_{part}_{tag}" for part in ("upper", "middle", "lower", "pctb", "width")}

    def level_columns(self) -> list[str]:
        """Indicator columns that are prices (they get a ``_rel`` twin)."""
        cols = [f"ema_{n}" for n in self.ema] + [f"sma_{n}" for n in self.sma]
        for n in self.bbands:
            names = self._bb_names(n)
            cols += [names["upper"], names["middle"], names["lower"]]
        cols += [f"vwap_{n}" for n in self.vwap] + (["vwap_day"] if self.vwap_day else [])
        return cols

    # -- pieces -------------------------------------------------------------------------------------
    @staticmethod
    def _arrays(df: pd.DataFrame) -> dict[str, np.ndarray]:
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

    def _indicators(self, a: dict[str, np.ndarray], index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
        o, h, lo, c, v = (a[k] for k in BAR_COLUMNS)
        del o
        out: dict[str, np.ndarray] = {}
        moments: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def mean_var(n: int) -> tuple[np.ndarray, np.ndarray]:
            if n not in moments:
                moments[n] = ind.rolling_mean_var(c, n)
            return moments[n]

        for n in self.rsi:
            out[f"rsi_{n}"] = ind.rsi(c, n)
        if self.macd:
            fast, slow, signal = self.macd
            line, sig, hist = ind.macd(c, fast, slow, signal)
            tag = f"{fast}_{slow}_{signal}"
            out[f"macd_{tag}"], out[f"macd_signal_{tag}"], out[f"macd_hist_{tag}"] = line, sig, hist
        for n in self.ema:
            out[f"ema_{n}"] = ind.ema(c, n)
        for n in self.sma:
            out[f"sma_{n}"] = mean_var(n)[0] if n in self.bbands else ind.sma(c, n)
        for n in self.bbands:
            names = self._bb_names(n)
            mid, var = mean_var(n)
            dev = self.bb_std * np.sqrt(var)
            upper, lower = mid + dev, mid - dev
            out[names["upper"]], out[names["middle"]], out[names["lower"]] = upper, mid, lower
            span = upper - lower
            with np.errstate(divide="ignore", invalid="ignore"):
                # A flat window has no band: the close sits in its middle.
                out[names["pctb"]] = np.where(span > 0, (c - lower) / span, 0.5)
                out[names["width"]] = span / mid
            out[names["pctb"]][np.isnan(mid)] = np.nan
        for n in self.atr:
            out[f"atr_{n}"] = ind.atr(h, lo, c, n)
        for n in self.vwap:
            out[f"vwap_{n}"] = ind.vwap_rolling(h, lo, c, v, n)
        if self.vwap_day:
            day = index.as_unit("ns").asi8 // _NS_PER_DAY
            out["vwap_day"] = ind.vwap_anchored(h, lo, c, v, day)
        return out

    def _derived(self, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        h, lo, c, v = a["high"], a["low"], a["close"], a["volume"]
        size = len(c)
        out: dict[str, np.ndarray] = {}
        logc = np.log(c)
        for n in self.returns:
            r = np.full(size, np.nan)
            r[n:] = c[n:] / c[:-n] - 1.0
            out[f"ret_{n}"] = r
        for n in self.log_returns:
            r = np.full(size, np.nan)
            r[n:] = logc[n:] - logc[:-n]
            out[f"logret_{n}"] = r
        if self.volatility:
            r1 = np.diff(logc)
            for n in self.volatility:
                vol = np.full(size, np.nan)
                if len(r1) >= n:
                    vol[1:] = np.sqrt(ind.rolling_mean_var(r1, n)[1] * (n / (n - 1)))
                out[f"volatility_{n}"] = vol
        for n in self.volume_ratio:
            mean = ind.rolling_sum(v, n) / n
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"volume_ratio_{n}"] = np.where(mean > 0, v / mean, 0.0)
            out[f"volume_ratio_{n}"][np.isnan(mean)] = np.nan
        if self.hl_range:
            out["hl_range"] = (h - lo) / c
        return out

    # -- public API ---------------------------------------------------------------------------------
    def add_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``df`` with the configured indicator columns (raw values, TA-Lib definitions)."""
        a = self._arrays(df)
        new = self._indicators(a, pd.DatetimeIndex(df.index))
        return pd.concat([df, pd.DataFrame(new, index=df.index)], axis=1)

    def add_features(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``df`` with derived features, and ``<level>_rel`` twins of level indicators present."""
        a = self._arrays(df)
        new = self._derived(a)
        c = a["close"]
        for col in self.level_columns():
            if col in df.columns:
                new[f"{col}_rel"] = df[col].to_numpy(dtype=np.float64) / c - 1.0
        return pd.concat([df, pd.DataFrame(new, index=df.index)], axis=1)

    def _block(self, bars: pd.DataFrame) -> dict[str, np.ndarray]:
        """Feature-only columns of one timeframe, in a stable order."""
        a = self._arrays(bars)
        indicators = self._indicators(a, pd.DatetimeIndex(bars.index))
        levels = set(self.level_columns())
        out: dict[str, np.ndarray] = {}
        c = a["close"]
        for name, values in indicators.items():
            if name in levels:
                if self.levels in ("raw", "both"):
                    out[name] = values
                if self.levels in ("relative", "both"):
                    out[f"{name}_rel"] = values / c - 1.0
            else:
                out[name] = values
        out.update(self._derived(a))
        return out

    def multi_timeframe(self, frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Features of each timeframe's bars joined onto the first (base) frame's index.

        A higher-timeframe bar opening at T with length D is joined to base rows whose bar closes at or
        after T + D, i.e. base open time >= T + D - base length. Higher-timeframe columns are prefixed
        with the lower-case MT5 name: ``m5_rsi_14``, ``h1_ema_20_rel``.
        """
        if not frames:
            raise DataQualityError("multi_timeframe needs at least the base frame")
        items = list(frames.items())
        base_name, base = items[0]
        base_tf = parse(base_name, key="features.timeframes")
        base_index = pd.DatetimeIndex(base.index)
        self._check_spacing(base_index, base_tf)
        base_block = self._block(base)
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
            joins.append((tf.mt5.lower(), self._block(frame), np.maximum(pos, 0), unknown))
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
        out = pd.DataFrame(matrix.T, index=base.index, columns=names, copy=False)
        self.feature_names_ = names
        return out

    @staticmethod
    def _check_spacing(index: pd.DatetimeIndex, tf: Timeframe) -> None:
        # Bars closer together than the declared base length would make "closed" joins leak the future.
        if len(index) > 1:
            step = int(np.diff(index.as_unit("ns").asi8).min())
            if step < tf.seconds * 1_000_000_000:
                raise DataQualityError(f"bars are {pd.Timedelta(step)} apart but the base timeframe is "
                                       f"{tf.pandas}; set features.timeframes[0] to the bars' timeframe")

    def transform(self, bars: pd.DataFrame) -> pd.DataFrame:
        """The full feature matrix on ``bars``' index (feature columns only; warm-up rows are NaN)."""
        frames = {self.timeframes[0]: bars}
        for name, tf in zip(self.timeframes[1:], self._tfs[1:], strict=True):
            frames[name] = resample_bars(bars, tf)
        return self.multi_timeframe(frames)

    def __repr__(self) -> str:
        return f"FeatureEngineering(timeframes={self.timeframes!r}, levels={self.levels!r})"
