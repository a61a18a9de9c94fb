"""DataCleaner: rule-based cleaning of bars and ticks with a per-rule report.

Rules run in a fixed order and each removed row is counted under the first rule that removed it:
duplicates, missing, invalid (non-positive prices, negative volume, OHLC inconsistency; for ticks also a
crossed book), zero_volume (optional), zscore, iqr, spread (ticks), isolation_forest.

Outliers are judged on log prices relative to a short rolling median of the previous rows, scaled by the
rolling volatility of log returns, never on raw price levels (a global z-score of BTC prices flags whole
years). In causal mode (the default) every statistic uses rows strictly before the one judged and the
Isolation Forest is fitted on a past window, so cleaning a prefix of the data keeps exactly the rows
that cleaning the whole data keeps up to that point.

pandas is imported by the methods that use it: the ``cleaner`` config schema is generated from
:class:`DataCleaner`, and importing it must stay light (``python -m engine --cfg job``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.data.frames import BAR_COLUMNS
from engine.errors import DataQualityError
from engine.fields import bounded, check, choice

if TYPE_CHECKING:
    import pandas as pd

RULES = ("duplicates", "missing", "invalid", "zero_volume", "zscore", "iqr", "spread", "isolation_forest")


@dataclass
class CleaningReport:
    rows_in: int = 0
    rows_out: int = 0
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))
    filled: int = 0
    reordered: int = 0

    def as_dict(self) -> dict[str, float]:
        """Flat metrics (``rows_in``, ``removed_zscore``, ...); callers add their own prefix (``clean_``)."""
        out = {"rows_in": float(self.rows_in), "rows_out": float(self.rows_out),
               "filled": float(self.filled), "reordered": float(self.reordered),
               "removed_fraction": (self.rows_in - self.rows_out) / self.rows_in if self.rows_in else 0.0}
        out |= {f"removed_{rule}": float(count) for rule, count in self.removed.items()}
        return out


def _utc_indexed(df: pd.DataFrame, what: str, assume_utc: bool) -> pd.DataFrame:
    """A copy of ``df`` indexed by UTC time (from its index or a ``timestamp`` column), named ``timestamp``."""
    import pandas as pd

    out = df.copy()
    if not isinstance(out.index, pd.DatetimeIndex):
        if "timestamp" in out.columns:
            out = out.set_index(pd.DatetimeIndex(pd.to_datetime(out.pop("timestamp"), utc=True)))
        elif len(out) == 0:
            out.index = pd.DatetimeIndex([], tz="UTC")
        else:
            raise DataQualityError(f"{what} need a DatetimeIndex (or a 'timestamp' column) of UTC times; "
                                   f"got {type(out.index).__name__}")
    if out.index.tz is None:
        if not assume_utc:
            raise DataQualityError(f"{what} have a timezone-naive index; localise it "
                                   "(df.index = df.index.tz_localize('UTC')) or set cleaner.assume_utc=true")
        out.index = out.index.tz_localize("UTC")
    else:
        out.index = out.index.tz_convert("UTC")
    out.index.name = "timestamp"
    return out


@dataclass(kw_only=True, eq=False, repr=False)
class DataCleaner:
    """Cleans bar (OHLCV) and tick (bid/ask) frames; ``report_`` describes the last call.

    The fields are the cleaner's settings, bounds included, and the ``cleaner`` config schema is generated
    from them (``engine.config.groups.cleaner``), so the two cannot drift.

    Args:
        enabled: False returns an unchanged copy (``cleaner=off``).
        causal: judge each row with past rows only (required for anything feeding a live model).
        missing: ``drop`` rows with NaN in a required column, or ``ffill`` them from the previous row for up
            to ``max_ffill`` consecutive rows (volume is filled with 0); longer runs are dropped.
        keep_duplicate: which row of a duplicated timestamp to keep (``last``: the latest correction).
        drop_zero_volume: drop bars that traded nothing (stale bars around outages).
        zscore: flag |log price - rolling median| / rolling return volatility above this; None: off.
        iqr_k: flag deviations outside [Q1 - k IQR, Q3 + k IQR] of the rolling window; None: off.
        contamination: Isolation Forest share of anomalies; None: off.
        window: rows in the rolling statistics; ref_window: rows in the reference median.
        min_scale: floor on the volatility scale (log units) so flat stretches flag nothing.
        if_window / if_refit: Isolation Forest training rows and rows scored per fit (causal mode).
        spread_mult: ticks whose relative spread exceeds this multiple of the rolling median spread.
        assume_utc: read a timezone-naive index as UTC instead of refusing it.
    """

    enabled: bool = True
    causal: bool = True
    missing: str = choice("ffill", ("drop", "ffill"))
    max_ffill: int = bounded(3, ge=0)
    keep_duplicate: str = choice("last", ("first", "last"))
    drop_zero_volume: bool = False
    zscore: float | None = bounded(500.0, gt=0.0)
    iqr_k: float | None = bounded(None, gt=0.0)
    contamination: float | None = bounded(None, gt=0.0, le=0.5)
    # A rolling spread or median over one row is no statistic: at least two.
    window: int = bounded(1440, ge=2)
    ref_window: int = bounded(5, ge=1)
    min_scale: float = bounded(1e-4, gt=0.0)
    # An Isolation Forest fitted on a handful of rows isolates everything.
    if_window: int = bounded(20_000, ge=10)
    if_refit: int = bounded(10_000, ge=1)
    random_state: int = bounded(0, ge=0)
    # A multiple of the median spread at or below 1 would drop every tick quoting the usual spread or wider
    # (about half of them), which is no outlier rule: only multiples above 1 are accepted.
    spread_mult: float | None = bounded(20.0, gt=1.0)
    assume_utc: bool = False
    report_: CleaningReport = field(init=False, default_factory=CleaningReport)

    def __post_init__(self) -> None:
        check(self, "cleaner")
        for name in ("max_ffill", "window", "ref_window", "if_window", "if_refit", "random_state"):
            setattr(self, name, int(getattr(self, name)))
        self.min_scale = float(self.min_scale)

    # -- shared steps -------------------------------------------------------------------------------
    def _sort(self, df: pd.DataFrame) -> pd.DataFrame:
        if df.index.is_monotonic_increasing:
            return df
        ns = df.index.as_unit("ns").asi8
        # Rows that arrive earlier than a row already seen.
        self.report_.reordered = int((ns < np.maximum.accumulate(ns)).sum())
        return df.sort_index(kind="stable")

    def _missing(self, df: pd.DataFrame, required: list[str], volume: str | None) -> pd.DataFrame:
        for col in required:
            if len(df) and df[col].isna().all():
                raise DataQualityError(f"column {col!r} is entirely NaN; the source delivered no {col} "
                                       "values (check the source's column mapping)")
        bad = df[required].isna().any(axis=1)
        if not bad.any():
            return df
        if self.missing == "ffill" and self.max_ffill > 0:
            out = df.copy()
            filled = out[required].ffill(limit=self.max_ffill)
            if volume is not None and volume in required:
                # A filled bar traded nothing we know of.
                filled[volume] = out[volume].where(out[volume].notna() | filled[volume].isna(), 0.0)
            self.report_.filled = int((out[required].isna() & filled.notna()).any(axis=1).sum())
            out[required] = filled
            bad = out[required].isna().any(axis=1)
            self.report_.removed["missing"] += int(bad.sum())
            return out.loc[~bad.to_numpy()]
        self.report_.removed["missing"] += int(bad.sum())
        return df.loc[~bad.to_numpy()]

    def _drop(self, df: pd.DataFrame, mask: np.ndarray, rule: str) -> pd.DataFrame:
        count = int(mask.sum())
        if count:
            self.report_.removed[rule] += count
            return df.loc[~mask]
        return df

    def _rolling(self, s: pd.Series, n: int, stat: str, min_periods: int) -> pd.Series:
        if self.causal:
            return getattr(s.rolling(n, min_periods=min_periods), stat)().shift(1)
        return getattr(s.rolling(n, min_periods=min_periods, center=True), stat)()

    def _price_rules(self, df: pd.DataFrame, logp: np.ndarray, log_hi: np.ndarray, log_lo: np.ndarray,
                     extra: list[np.ndarray]) -> pd.DataFrame:
        """z-score, IQR and Isolation Forest verdicts on log prices; drops flagged rows in that order."""
        import pandas as pd

        if len(df) < 3:
            return df
        lp = pd.Series(logp)
        ref_n = self.ref_window if self.causal else 2 * (self.ref_window // 2) + 1
        ref = self._rolling(lp, ref_n, "median", 1).to_numpy()
        # Robust scale (1.4826 x median |return| = sigma for normal returns): a standard deviation would
        # be inflated by the very spike it is meant to expose.
        abs_ret = lp.diff().abs()
        min_periods = max(2, min(self.window, 30))
        mad = self._rolling(abs_ret, self.window, "median", min_periods).to_numpy()
        scale = np.maximum(1.4826 * mad, self.min_scale)
        dev = logp - ref
        extreme = np.maximum(np.abs(log_hi - ref), np.abs(log_lo - ref))
        keep = np.ones(len(df), dtype=bool)
        if self.zscore is not None:
            with np.errstate(invalid="ignore"):
                flag = extreme / scale > self.zscore
            self.report_.removed["zscore"] += int(flag.sum())
            keep &= ~flag
        if self.iqr_k is not None:
            d = pd.Series(dev)
            roll = d.rolling(self.window, min_periods=min_periods, center=not self.causal)
            lo_q, hi_q = roll.quantile(0.25), roll.quantile(0.75)
            if self.causal:
                lo_q, hi_q = lo_q.shift(1), hi_q.shift(1)
            q1a, q3a = lo_q.to_numpy(), hi_q.to_numpy()
            iqr = np.maximum(q3a - q1a, self.min_scale)
            with np.errstate(invalid="ignore"):
                flag = keep & ((dev < q1a - self.iqr_k * iqr) | (dev > q3a + self.iqr_k * iqr))
            self.report_.removed["iqr"] += int(flag.sum())
            keep &= ~flag
        if self.contamination is not None:
            # Scale-free inputs, so a model fitted on a past window still fits the next block.
            extras = [np.nan_to_num(e - self._rolling(pd.Series(e), self.window, "median", min_periods).to_numpy())
                      for e in extra]
            feats = np.column_stack([np.nan_to_num(dev / scale), np.nan_to_num((log_hi - log_lo) / scale), *extras])
            flag = keep & self._isolation_flags(feats)
            self.report_.removed["isolation_forest"] += int(flag.sum())
            keep &= ~flag
        return df.loc[keep]

    def _isolation_flags(self, feats: np.ndarray) -> np.ndarray:
        from sklearn.ensemble import IsolationForest

        size = len(feats)
        flags = np.zeros(size, dtype=bool)

        def model() -> IsolationForest:
            return IsolationForest(n_estimators=100, contamination=self.contamination,
                                   random_state=self.random_state)

        if not self.causal:
            if size >= 10:
                flags[:] = model().fit(feats).predict(feats) == -1
            return flags
        # Fit on the if_window rows before each block of if_refit rows; rows before the first full
        # training window are not judged. Block edges are fixed offsets from the first row.
        for start in range(self.if_window, size, self.if_refit):
            stop = min(start + self.if_refit, size)
            fitted = model().fit(feats[start - self.if_window : start])
            flags[start:stop] = fitted.predict(feats[start:stop]) == -1
        return flags

    def _finish(self, df: pd.DataFrame) -> pd.DataFrame:
        self.report_.rows_out = len(df)
        return df

    # -- bars ---------------------------------------------------------------------------------------
    def clean_ohlcv(self, df: pd.DataFrame) -> pd.DataFrame:
        """A cleaned copy of bars (columns open, high, low, close, volume; others are carried along)."""
        self.report_ = CleaningReport(rows_in=len(df))
        if not self.enabled:
            return self._finish(df.copy())
        missing_cols = [c for c in BAR_COLUMNS if c not in df.columns]
        if missing_cols:
            raise DataQualityError(f"bars lack column(s) {missing_cols}; expected {list(BAR_COLUMNS)}")
        out = _utc_indexed(df, "bars", self.assume_utc)
        out[list(BAR_COLUMNS)] = out[list(BAR_COLUMNS)].astype("float64")
        out = self._sort(out)
        out = self._drop(out, out.index.duplicated(keep=self.keep_duplicate), "duplicates")
        out = self._missing(out, list(BAR_COLUMNS), "volume")
        o, h, lo, c, v = (out[k].to_numpy() for k in BAR_COLUMNS)
        invalid = ((np.minimum(np.minimum(o, h), np.minimum(lo, c)) <= 0) | (v < 0)
                   | (h < np.maximum(o, c)) | (lo > np.minimum(o, c)))
        out = self._drop(out, invalid, "invalid")
        if self.drop_zero_volume:
            out = self._drop(out, out["volume"].to_numpy() == 0, "zero_volume")
        h, lo, c, v = (out[k].to_numpy() for k in ("high", "low", "close", "volume"))
        out = self._price_rules(out, np.log(c), np.log(h), np.log(lo), [np.log1p(v)])
        return self._finish(out)

    # -- ticks --------------------------------------------------------------------------------------
    def clean_ticks(self, df: pd.DataFrame) -> pd.DataFrame:
        """A cleaned copy of ticks (columns bid, ask; volume and others optional and carried along).

        Ticks may share a timestamp; only fully identical rows count as duplicates.
        """
        import pandas as pd

        self.report_ = CleaningReport(rows_in=len(df))
        if not self.enabled:
            return self._finish(df.copy())
        missing_cols = [c for c in ("bid", "ask") if c not in df.columns]
        if missing_cols:
            raise DataQualityError(f"ticks lack column(s) {missing_cols}; expected bid, ask (volume optional)")
        out = _utc_indexed(df, "ticks", self.assume_utc)
        out = self._sort(out)
        dup = out.reset_index().duplicated(keep=self.keep_duplicate).to_numpy()
        out = self._drop(out, dup, "duplicates")
        required = ["bid", "ask"] + (["volume"] if "volume" in out.columns else [])
        out[required] = out[required].astype("float64")
        out = self._missing(out, required, "volume" if "volume" in required else None)
        bid, ask = out["bid"].to_numpy(), out["ask"].to_numpy()
        invalid = (bid <= 0) | (ask <= 0) | (bid > ask)
        if "volume" in out.columns:
            invalid |= out["volume"].to_numpy() < 0
        out = self._drop(out, invalid, "invalid")
        bid, ask = out["bid"].to_numpy(), out["ask"].to_numpy()
        if self.spread_mult is not None and len(out) > 2:
            rel = pd.Series((ask - bid) / ((ask + bid) / 2.0))
            med = self._rolling(rel, self.window, "median", max(2, min(self.window, 30))).to_numpy()
            floor = 1e-6  # a locked book (zero median spread) still allows a 1 bp-scale spread
            with np.errstate(invalid="ignore"):
                flag = rel.to_numpy() > self.spread_mult * np.maximum(med, floor)
            out = self._drop(out, flag, "spread")
        bid, ask = out["bid"].to_numpy(), out["ask"].to_numpy()
        logmid = np.log((bid + ask) / 2.0)
        out = self._price_rules(out, logmid, np.log(ask), np.log(bid), [])
        return self._finish(out)

    def __repr__(self) -> str:
        return f"DataCleaner(enabled={self.enabled}, causal={self.causal}, zscore={self.zscore})"
