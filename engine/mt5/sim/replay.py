"""The replay clock and what a client may see at it: quotes, bars up to the forming one, ticks.

Prices: bars are bid bars (as in MT5); ask = bid + spread unless real quotes are replayed. The bar
forming at the replay time shows only its open price, so nothing after "now" can leak to a client.
Not thread-safe on its own: SimMarket calls it under its lock.
"""

from __future__ import annotations

import random
import time
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import InvalidRequestError
from engine.mt5 import contract
from engine.mt5.sim.series import NS, BarSeries, bars_from_ticks, coarser_series, minute_series, tick_arrays
from engine.mt5.sim.settings import SimSettings
from engine.timeframes import Timeframe


class Replay:
    """Real bars (and optionally real quotes) on a clock: step mode, or ``speed`` times wall-clock time."""

    def __init__(self, bars: pd.DataFrame | None, ticks: pd.DataFrame | None, settings: SimSettings,
                 rng: random.Random) -> None:
        if bars is None and ticks is None:
            raise InvalidRequestError("the simulator needs bars or ticks to replay")
        self.settings = settings
        self._rng = rng
        self.offset_s = round(settings.server_offset_hours * 3600)
        self._ticks = tick_arrays(ticks, self.offset_s) if ticks is not None else None
        if bars is None:
            bars = bars_from_ticks(ticks)  # type: ignore[arg-type]
        self.m1 = minute_series(bars, self.offset_s)
        self._series: dict[int, BarSeries] = {60: self.m1}
        n = len(self.m1.start_s)
        if settings.start is None:
            self.cursor = n - 1
        else:
            start = pd.Timestamp(settings.start)
            start = start.tz_localize("UTC") if start.tz is None else start.tz_convert("UTC")
            want = int(start.as_unit("ns").value // NS) + self.offset_s  # epoch seconds, server time
            self.cursor = int(min(max(np.searchsorted(self.m1.start_s, want, side="right") - 1, 0), n - 1))
        self._wall0 = time.monotonic()
        self._cursor0 = self.cursor
        self._exact_s = float(self.m1.start_s[self.cursor])

    # -- clock ----------------------------------------------------------------------------------------
    def follow_wall_clock(self) -> None:
        """Move to wall-clock time (speed > 0); in step mode the clock stays at the current bar's open."""
        if self.settings.speed > 0:
            elapsed = (time.monotonic() - self._wall0) * self.settings.speed
            want = self.m1.start_s[self._cursor0] + elapsed
            k = int(np.searchsorted(self.m1.start_s, want, side="right") - 1)
            self.cursor = min(max(k, self.cursor), len(self.m1.start_s) - 1)
            self._exact_s = max(float(want), float(self.m1.start_s[self.cursor]))
        else:
            self._exact_s = float(self.m1.start_s[self.cursor])

    def step(self, bars: int) -> int:
        """Move the cursor ``bars`` one-minute bars forward (bounded by the data); how many it moved."""
        target = min(self.cursor + max(int(bars), 0), len(self.m1.start_s) - 1)
        moved = target - self.cursor
        self.cursor = target
        return moved

    def now_server_s(self) -> int:
        return int(self.m1.start_s[self.cursor])

    def now_utc(self) -> pd.Timestamp:
        return pd.Timestamp((self.now_server_s() - self.offset_s) * NS, tz="UTC")

    # -- prices ----------------------------------------------------------------------------------------
    def quote(self) -> tuple[float, float, int]:
        """(bid, ask, time_msc in server time) at the replay time."""
        if self._ticks is not None:
            now_ms = int(self._exact_s * 1000)
            i = int(np.searchsorted(self._ticks["ms"], now_ms, side="right") - 1)
            if i >= 0:
                return float(self._ticks["bid"][i]), float(self._ticks["ask"][i]), int(self._ticks["ms"][i])
        bid = float(self.m1.open[self.cursor])
        return bid, self.round(bid + self.settings.spread_points * self.settings.point), self.now_server_s() * 1000

    def round(self, price: float) -> float:
        return round(price, self.settings.digits)

    # -- bars and ticks ----------------------------------------------------------------------------------
    def series(self, tf: Timeframe) -> BarSeries:
        if tf.mt5 == "MN1" or tf.seconds % 60:
            raise InvalidRequestError(f"the simulator serves fixed-length timeframes (M1..W1), not {tf.mt5}")
        found = self._series.get(tf.seconds)
        if found is None:
            found = self._series[tf.seconds] = coarser_series(self.m1, tf.seconds)
        return found

    def bars_back(self, tf: Timeframe, start_pos: int, count: int) -> list[dict[str, Any]]:
        """``count`` bars ending ``start_pos`` bars before the forming one."""
        series = self.series(tf)
        visible = int(np.searchsorted(series.start_s, self.now_server_s(), side="right"))
        hi = visible - start_pos
        return self._bar_records(series, hi - count, hi)

    def bars_between(self, tf: Timeframe, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Bars opening in ``[start, end]`` (server time) that exist at the replay time."""
        series = self.series(tf)
        lo = int(np.searchsorted(series.start_s, contract.epoch_s(start), side="left"))
        hi = int(np.searchsorted(series.start_s, contract.epoch_s(end), side="right"))
        return self._bar_records(series, lo, hi)

    def _bar_records(self, series: BarSeries, lo: int, hi: int) -> list[dict[str, Any]]:
        """Bars ``lo..hi-1`` of ``series`` visible at the replay time; the last may be the forming one."""
        k = self.cursor
        # Bars are visible up to the one containing "now"; that one is cut at the current M1 open.
        visible = int(np.searchsorted(series.start_s, self.now_server_s(), side="right"))
        lo, hi = max(lo, 0), min(hi, visible)
        if hi <= lo:
            return []
        times = np.datetime_as_string(series.start_s[lo:hi].astype("datetime64[s]"), unit="s").tolist()
        opens, highs = series.open[lo:hi].tolist(), series.high[lo:hi].tolist()
        lows, closes = series.low[lo:hi].tolist(), series.close[lo:hi].tolist()
        vol = series.volume[lo:hi].tolist()
        if hi == visible:
            j = hi - 1 - lo
            first = int(series.first[hi - 1])
            m1 = self.m1
            if first < k:  # partial higher-timeframe bar: closed M1 rows plus the current open
                opens[j] = float(m1.open[first])
                highs[j] = float(max(m1.high[first:k].max(), m1.open[k]))
                lows[j] = float(min(m1.low[first:k].min(), m1.open[k]))
                closes[j] = float(m1.open[k])
                vol[j] = float(m1.volume[first:k].sum())
            else:
                opens[j] = highs[j] = lows[j] = closes[j] = float(m1.open[k])
                vol[j] = 0.0
        spread = int(self.settings.spread_points)
        # tick_volume is synthetic (the data has no tick counts); real_volume carries the data's volume.
        return [{"time": t, "open": o, "high": h, "low": lw, "close": c, "tick_volume": 1 + int(v),
                 "spread": spread, "real_volume": v}
                for t, o, h, lw, c, v in zip(times, opens, highs, lows, closes, vol, strict=True)]

    def ticks_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Ticks in ``[start, end]`` (server time, end to its last millisecond) up to the replay time."""
        now_ms = self.quote()[2]
        lo_ms, hi_ms = contract.epoch_s(start) * 1000, min(contract.epoch_s(end) * 1000 + 999, now_ms)
        if self._ticks is None:
            # Bar-backed: one tick per bar open (the only price known inside a bar without lookahead).
            m1 = self.m1
            lo = int(np.searchsorted(m1.start_s * 1000, lo_ms, side="left"))
            hi = int(np.searchsorted(m1.start_s * 1000, hi_ms, side="right"))
            ms, bid = m1.start_s[lo:hi] * 1000, m1.open[lo:hi]
            ask = np.round(bid + self.settings.spread_points * self.settings.point, self.settings.digits)
            last, vol = np.zeros(len(ms)), np.zeros(len(ms))
        else:
            t = self._ticks
            lo = int(np.searchsorted(t["ms"], lo_ms, side="left"))
            hi = int(np.searchsorted(t["ms"], hi_ms, side="right"))
            ms, bid, ask = t["ms"][lo:hi], t["bid"][lo:hi], t["ask"][lo:hi]
            last, vol = t["last"][lo:hi], t["volume"][lo:hi]
        rate = self.settings.duplicate_tick_rate
        out = []
        for m, b, a, la, v in zip(ms.tolist(), bid.tolist(), ask.tolist(), last.tolist(), vol.tolist(), strict=True):
            rec = {"time": contract.iso(contract.from_epoch_s(m // 1000)), "time_msc": m, "bid": b, "ask": a,
                   "last": la, "volume": v}
            out.append(rec)
            if rate and self._rng.random() < rate:  # a fault: a bridge re-sending a tick
                out.append(dict(rec))
        return out
