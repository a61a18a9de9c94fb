"""Features one closed bar at a time, equal to :class:`engine.data.features.FeatureEngineering`'s batch features.

The live loop cannot recompute every feature over its whole history on each bar, and must not compute
anything the model was not trained on. :class:`IncrementalFeatures` is built from a warm-up history (the
last closed bars before trading starts), then takes one closed base bar per :meth:`update` and returns the
feature row the batch ``FeatureEngineering.transform`` gives for that bar when run over the warm-up plus
every bar since: same columns, same order, same values (recursions to the float, rolling statistics to the
batch's rounding; tests/live/test_incremental_features.py compares them over thousands of bars).

Higher timeframes follow the batch's join rule: a higher-timeframe bar is built from the base bars of its
UTC bin and joins the base rows from the one that closes it (its last base slot), or from the first base bar
of a later bin when that slot is missing. Until a family has seen enough bars its columns are NaN, as in
the batch; :meth:`model_input` is None until the model's whole input is complete.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from engine.data.features import FeatureEngineering
from engine.data.indicator_state import NAN, Atr, Ema, Macd, Ring, Rsi, mean_var, window_sum
from engine.data.indicators import sma as sma_kernel
from engine.errors import DataQualityError
from engine.timeframes import Timeframe, parse

NS = 1_000_000_000
_NS_PER_DAY = 86_400 * NS
EMA_SETTLE = 5  # warm-up spans this many of the longest recursion: its seed's weight is then below 1e-4


def _fmt(value: float) -> str:
    return f"{value:g}".replace(".", "p").replace("-", "m")


def lookback(features: FeatureEngineering) -> int:
    """Bars of one timeframe after which every family of ``features`` has a value there."""
    longest = [1]
    longest += [n + 1 for n in (*features.rsi, *features.atr, *features.returns, *features.log_returns,
                                *features.volatility)]
    longest += list((*features.ema, *features.sma, *features.bbands, *features.vwap, *features.volume_ratio))
    if features.macd:
        longest.append(max(features.macd[:2]) + features.macd[2] - 1)
    return max(longest)


def warmup_bars(features: FeatureEngineering, seq_len: int | None = None) -> int:
    """Base bars to load before trading: every timeframe past its longest lookback, the recursions
    (EMA, RSI, MACD, ATR) run for ``EMA_SETTLE`` times their period so their seed no longer matters, plus
    the model's window."""
    tfs = [parse(t, key="features.timeframes") for t in features.timeframes]
    base = tfs[0].seconds
    recursive = max([1, *features.ema, *features.rsi, *features.atr, *(features.macd[1:2] or [1])])
    need = max((max(lookback(features), EMA_SETTLE * recursive) + 1) * (tf.seconds // base) for tf in tfs)
    return int(need + (seq_len or 1))


def feature_names(features: FeatureEngineering) -> list[str]:
    """The batch's feature columns, in its order (from a transform of a few synthetic bars: names depend on
    the settings only)."""
    base = parse(features.timeframes[0], key="features.timeframes")
    index = pd.date_range("2024-01-01", periods=3, freq=f"{base.seconds}s", tz="UTC", name="timestamp")
    bars = pd.DataFrame({c: [1.0, 1.0, 1.0] for c in ("open", "high", "low", "close", "volume")}, index=index)
    return list(features.transform(bars).columns)


class _Block:
    """The feature columns of one timeframe (FeatureEngineering's ``_block``), one bar at a time."""

    def __init__(self, fe: FeatureEngineering, names: list[str]) -> None:
        self.fe = fe
        self.rsi = [(f"rsi_{n}", Rsi(n)) for n in fe.rsi]
        self.macd = Macd(*fe.macd) if fe.macd else None
        self.macd_names = tuple(f"{part}_{'_'.join(map(str, fe.macd))}" for part in ("macd", "macd_signal",
                                                                                      "macd_hist"))
        self.ema = [(f"ema_{n}", Ema(n)) for n in fe.ema]
        self.atr = [(f"atr_{n}", Atr(n)) for n in fe.atr]
        self.bb = [(n, {p: f"bb_{p}_{n}_{_fmt(fe.bb_std)}" for p in ("upper", "middle", "lower", "pctb", "width")})
                   for n in fe.bbands]
        longest = lookback(fe) + 1
        self.closes, self.logc = Ring(longest), Ring(longest)
        self.r1, self.volume, self.pv = Ring(longest), Ring(longest), Ring(longest)
        self.day, self.day_pv, self.day_v = -1, 0.0, 0.0
        levels = set(fe.level_columns())
        rel = fe.levels in ("relative", "both")
        # What each output column is: a computed value, or a level indicator relative to the close.
        self.plan = [(name[:-4], True) if rel and name.endswith("_rel") and name[:-4] in levels else (name, False)
                     for name in names]
        self.names = names

    def update(self, start_ns: int, h: float, lo: float, c: float, v: float) -> np.ndarray:
        fe, vals = self.fe, {}
        self.closes.push(c)
        n_seen = self.closes.count
        for name, state in self.rsi:
            vals[name] = state.update(c)
        if self.macd is not None:
            vals.update(zip(self.macd_names, self.macd.update(c), strict=True))
        for name, state in self.ema:
            vals[name] = state.update(c)
        win = self.closes.last(min(n_seen, self.closes.capacity))
        for n in fe.sma:
            # the batch's SMA alone skips the flat-window check; its mean is the same sum either way
            vals[f"sma_{n}"] = mean_var(win, n)[0] if n in fe.bbands else (
                float(sma_kernel(win[-n:], n)[-1]) if n_seen >= n else NAN)
        for n, names in self.bb:
            mid, var = mean_var(win, n)
            dev = fe.bb_std * math.sqrt(var) if var == var else NAN
            upper, lower = mid + dev, mid - dev
            span = upper - lower
            vals[names["upper"]], vals[names["middle"]], vals[names["lower"]] = upper, mid, lower
            vals[names["pctb"]] = NAN if mid != mid else ((c - lower) / span if span > 0 else 0.5)
            vals[names["width"]] = span / mid if mid == mid else NAN
        for name, state in self.atr:
            vals[name] = state.update(h, lo, c)
        typical = (h + lo + c) / 3.0
        self.pv.push(typical * v)
        self.volume.push(v)
        vol_win = self.volume.last(min(self.volume.count, self.volume.capacity))
        if fe.vwap:
            pv_win = self.pv.last(min(self.pv.count, self.pv.capacity))
            for n in fe.vwap:
                pv_sum, v_sum = window_sum(pv_win, n), window_sum(vol_win, n)
                vals[f"vwap_{n}"] = NAN if v_sum != v_sum else (pv_sum / v_sum if v_sum > 0 else typical)
        if fe.vwap_day:
            day = start_ns // _NS_PER_DAY
            if day != self.day:
                self.day, self.day_pv, self.day_v = day, 0.0, 0.0
            self.day_pv += typical * v
            self.day_v += v
            vals["vwap_day"] = self.day_pv / self.day_v if self.day_v > 0 else typical
        self._derived(vals, h, lo, c, v, vol_win)
        return np.array([vals[key] / c - 1.0 if rel else vals[key] for key, rel in self.plan], dtype=np.float64)

    def _derived(self, vals: dict[str, float], h: float, lo: float, c: float, v: float,
                 vol_win: np.ndarray) -> None:
        fe = self.fe
        n_seen = self.closes.count
        logc = math.log(c)
        if n_seen > 1:
            self.r1.push(logc - self.logc.back(0))
        self.logc.push(logc)
        for n in fe.returns:
            vals[f"ret_{n}"] = c / self.closes.back(n) - 1.0 if n_seen > n else NAN
        for n in fe.log_returns:
            vals[f"logret_{n}"] = logc - self.logc.back(n) if n_seen > n else NAN
        if fe.volatility:
            r1 = self.r1.last(min(self.r1.count, self.r1.capacity))
            for n in fe.volatility:
                var = mean_var(r1, n)[1]
                vals[f"volatility_{n}"] = math.sqrt(var * (n / (n - 1))) if var == var else NAN
        for n in fe.volume_ratio:
            mean = window_sum(vol_win, n) / n
            vals[f"volume_ratio_{n}"] = NAN if mean != mean else (v / mean if mean > 0 else 0.0)
        if fe.hl_range:
            vals["hl_range"] = (h - lo) / c


class _HigherTimeframe:
    """A higher timeframe's bin being filled from base bars, and the features of its last closed bar."""

    def __init__(self, fe: FeatureEngineering, tf: Timeframe, base: Timeframe, names: list[str]) -> None:
        self.block = _Block(fe, names)
        self.width = tf.seconds * NS
        self.base = base.seconds * NS
        self.bin: int | None = None
        self.ohlcv = [NAN] * 5
        self.joined = np.full(len(names), np.nan)

    def _close_bin(self) -> None:
        _, h, lo, c, v = self.ohlcv
        self.joined = self.block.update(self.bin * self.width, h, lo, c, v)
        self.bin = None

    def update(self, start_ns: int, o: float, h: float, lo: float, c: float, v: float) -> np.ndarray:
        b = start_ns // self.width
        if self.bin is not None and b != self.bin:
            self._close_bin()  # its last base slot never came: it closes as the batch joins it, here
        if self.bin is None:
            self.bin, self.ohlcv = b, [o, h, lo, c, v]
        else:
            bar = self.ohlcv
            bar[1], bar[2], bar[3], bar[4] = max(bar[1], h), min(bar[2], lo), c, bar[4] + v
        if start_ns + self.base == (b + 1) * self.width:
            self._close_bin()
        return self.joined


class IncrementalFeatures:
    """The feature rows of ``features`` for closed base bars, one at a time, from a warm-up ``history``.

    ``history``: conforming bars at the base timeframe (``features.timeframes[0]``), oldest first; the
    state is built by feeding them through :meth:`update`, so a warm-up and a live bar take the same path.
    ``seq_len``: the model's window (sequence models); :meth:`model_input` then returns the last ``seq_len``
    rows, as the dataset's windows hold them (float32, NaN as 0 — though a window is only offered when
    every row in it is complete).
    """

    def __init__(self, features: FeatureEngineering, history: pd.DataFrame, *, seq_len: int | None = None) -> None:
        self.features = features
        self.tfs = [parse(t, key="features.timeframes") for t in features.timeframes]
        self.base = self.tfs[0]
        if len(history) < 2:
            raise DataQualityError(f"the warm-up history holds {len(history)} bars; incremental features need "
                                   f"at least {warmup_bars(features, seq_len)} (see warmup_bars)")
        # The batch's own columns, in its order: the state must produce exactly these.
        self.names = feature_names(features)
        prefixes = [tf.mt5.lower() + "_" for tf in self.tfs[1:]]
        base_names = [n for n in self.names if not n.startswith(tuple(prefixes))] if prefixes else list(self.names)
        self._base = _Block(features, base_names)
        self._higher = [_HigherTimeframe(features, tf, self.base,
                                         [n[len(p):] for n in self.names if n.startswith(p)])
                        for tf, p in zip(self.tfs[1:], prefixes, strict=True)]
        self.seq_len = seq_len
        self._window = np.zeros((seq_len or 1, len(self.names)), dtype=np.float32)
        self._complete_run = 0  # consecutive complete rows ending at the last one
        self.last_time: pd.Timestamp | None = None
        self.row = np.full(len(self.names), np.nan)
        self.n_updates = 0
        index = pd.DatetimeIndex(history.index).as_unit("ns").asi8
        cols = [history[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")]
        for i, start in enumerate(index.tolist()):
            self._step(start, *(float(col[i]) for col in cols))

    @property
    def complete(self) -> bool:
        """Every feature of the last row has a value."""
        return self._complete_run > 0

    def update(self, time: pd.Timestamp, bar: Mapping[str, float]) -> np.ndarray:
        """The feature row of the closed base bar opening at ``time`` (UTC) with ``bar``'s OHLCV."""
        start = pd.Timestamp(time).as_unit("ns").value
        return self._step(start, float(bar["open"]), float(bar["high"]), float(bar["low"]), float(bar["close"]),
                          float(bar["volume"]))

    def _step(self, start: int, o: float, h: float, lo: float, c: float, v: float) -> np.ndarray:
        if self.last_time is not None and start - self.last_time.value < self.base.seconds * NS:
            raise DataQualityError(f"bar at {pd.Timestamp(start, tz='UTC')} is not at least one {self.base.mt5} bar "
                                   f"after the previous one ({self.last_time}); only new closed bars, in order")
        if not (c > 0 and h >= lo and math.isfinite(o + h + lo + c + v) and v >= 0):
            raise DataQualityError(f"bar at {pd.Timestamp(start, tz='UTC')} is not a valid bar: "
                                   f"o={o} h={h} l={lo} c={c} v={v}")
        parts = [self._base.update(start, h, lo, c, v)]
        parts += [htf.update(start, o, h, lo, c, v) for htf in self._higher]
        row = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self.row = row
        self.last_time = pd.Timestamp(start, tz="UTC")
        self.n_updates += 1
        self._complete_run = self._complete_run + 1 if not np.isnan(row).any() else 0
        if self.seq_len is not None:
            self._window[:-1] = self._window[1:]  # numpy copies overlapping slices safely
            self._window[-1] = row
        return row

    def model_input(self) -> np.ndarray | None:
        """The model's input for the last bar: ``[1, features]`` (tabular) or ``[1, seq_len, features]``
        (sequence models); None while any value it needs is missing."""
        if self.seq_len is None:
            return self.row[None, :] if self._complete_run > 0 else None
        if self._complete_run < self.seq_len:
            return None
        return self._window[None, :, :]


__all__ = ["EMA_SETTLE", "IncrementalFeatures", "feature_names", "lookback", "warmup_bars"]
