"""FeatureEngineering: causal indicator and derived features on bars, across timeframes.

Column names are stable and documented in docs/features.md. Every value at row t uses only bars whose
close is at or before the close of bar t; higher-timeframe features join onto a base bar only once the
higher-timeframe bar has closed (a 5-minute bar opening at 12:00 is joined from the 1-minute bar opening at
12:04, which closes at 12:05).

Importing this module is light (no pandas, no numba): the ``features`` config schema is generated from
:class:`FeatureEngineering`, and ``python -m engine --cfg job`` should not pay for the numeric stack. The
computation lives in :mod:`engine.data.feature_columns`, imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING

from engine.data.frames import BAR_COLUMNS
from engine.errors import ConfigError
from engine.fields import bounded, bounded_items, check, choice
from engine.timeframes import Timeframe, parse

if TYPE_CHECKING:
    import pandas as pd

LEVELS = ("raw", "relative", "both")
PERIOD_FIELDS = ("rsi", "ema", "sma", "macd", "bbands", "atr", "vwap", "returns", "log_returns", "volatility",
                 "volume_ratio")


def _fmt(value: float) -> str:
    text = f"{value:g}"
    return text.replace(".", "p").replace("-", "m")


def resample_bars(bars: pd.DataFrame, timeframe: str | Timeframe) -> pd.DataFrame:
    """OHLCV bars aggregated to ``timeframe`` on UTC boundaries, labelled by bar open time.

    Bins holding no base bar are absent (nothing is invented); a bin is built from the base bars it
    holds, so the last one may be partial: see :meth:`FeatureEngineering.multi_timeframe` for why that
    never leaks.
    """
    import numpy as np
    import pandas as pd

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
    def bb_names(self, n: int) -> dict[str, str]:
        """Column names of the Bollinger band of period ``n`` (the deviation multiple is part of them)."""
        tag = f"{n}_{_fmt(self.bb_std)}"
        return {part: f"bb_{part}_{tag}" for part in ("upper", "middle", "lower", "pctb", "width")}

    def level_columns(self) -> list[str]:
        """Indicator columns that are prices (they get a ``_rel`` twin)."""
        cols = [f"ema_{n}" for n in self.ema] + [f"sma_{n}" for n in self.sma]
        for n in self.bbands:
            names = self.bb_names(n)
            cols += [names["upper"], names["middle"], names["lower"]]
        cols += [f"vwap_{n}" for n in self.vwap] + (["vwap_day"] if self.vwap_day else [])
        return cols

    # -- public API: the numbers come from engine.data.feature_columns, imported on first use -----------
    def add_indicators(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``df`` with the configured indicator columns (raw values, TA-Lib definitions)."""
        import pandas as pd

        from engine.data.feature_columns import bar_arrays, indicator_columns

        new = indicator_columns(self, bar_arrays(df), pd.DatetimeIndex(df.index))
        return pd.concat([df, pd.DataFrame(new, index=df.index)], axis=1)

    def add_features(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``df`` with derived features, and ``<level>_rel`` twins of level indicators present."""
        import pandas as pd

        from engine.data.feature_columns import bar_arrays, derived_columns, relative_levels

        a = bar_arrays(df)
        new = derived_columns(self, a) | relative_levels(self, df, a["close"])
        return pd.concat([df, pd.DataFrame(new, index=df.index)], axis=1)

    def multi_timeframe(self, frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
        """Features of each timeframe's bars joined onto the first (base) frame's index.

        A higher-timeframe bar opening at T with length D is joined to base rows whose bar closes at or
        after T + D, i.e. base open time >= T + D - base length. Higher-timeframe columns are prefixed
        with the lower-case MT5 name: ``m5_rsi_14``, ``h1_ema_20_rel``.
        """
        from engine.data.feature_columns import join_closed

        out = join_closed(self, frames)
        self.feature_names_ = [str(c) for c in out.columns]
        return out

    def transform(self, bars: pd.DataFrame) -> pd.DataFrame:
        """The full feature matrix on ``bars``' index (feature columns only; warm-up rows are NaN)."""
        frames = {self.timeframes[0]: bars}
        for name, tf in zip(self.timeframes[1:], self._tfs[1:], strict=True):
            frames[name] = resample_bars(bars, tf)
        return self.multi_timeframe(frames)

    def __repr__(self) -> str:
        return f"FeatureEngineering(timeframes={self.timeframes!r}, levels={self.levels!r})"
