"""One poll of one series: what the feed holds after the series' cursor, and how far the cursor may move.

Each poll is one request (ticks over at most ``tick_span``; at most ``max_bars`` bars), so a short answer can
never hide a gap behind a later chunk, and the cursor moves only as far as the rows that came back: an answer
cut short is continued by the next poll. Ticks are asked for from the last tick's own second again (the
contract's times are whole seconds, and an answer may have stopped inside a millisecond); the rows of that
second already taken (``edge``) and rows repeated inside one answer are dropped. Bars are asked for up to the open of the bar still forming, so only
closed bars are read. An empty answer moves the cursor past a window only when the whole window is in the
feed's past (no tick or bar can appear there any more), and only after a second request agrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from engine import timeframes
from engine.data.frames import to_utc
from engine.storage.base import TickStore

_US = pd.Timedelta(microseconds=1)


class Feed(Protocol):
    """What the ingestor reads (engine.mt5.MT5RestClient satisfies it)."""

    max_bars: int

    def latest_tick(self, symbol: str) -> dict[str, Any]: ...

    def server_offset(self, symbol: str = ...) -> pd.Timedelta: ...

    def ticks_range(self, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame: ...

    def bars_range(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame: ...


@dataclass
class Series:
    symbol: str
    timeframe: str | None  # None: ticks
    cursor: pd.Timestamp | None = None  # ticks: time of the last tick taken; bars: open of the last bar taken
    edge: set[tuple] = field(default_factory=set)  # ticks taken in the cursor's second (up to the cursor)
    buffer: list[pd.DataFrame] = field(default_factory=list)
    rows: int = 0
    oldest: float | None = None  # monotonic time at which the oldest buffered row arrived

    @property
    def name(self) -> str:
        return f"{self.symbol} {'ticks' if self.timeframe is None else self.timeframe}"


@dataclass(frozen=True)
class Polled:
    rows: pd.DataFrame
    duplicates: int  # rows repeated within the answer (the re-asked edge millisecond is not counted)
    caught_up: bool  # the series reached the feed's present: wait a poll interval before the next


def tick_keys(frame: pd.DataFrame) -> list[tuple]:
    """Ticks as hashable keys at the store's microsecond precision; -0.0 folded into 0.0."""
    us = pd.DatetimeIndex(frame.index).as_unit("us").asi8
    cols = [frame[c].to_numpy("float64") + 0.0 for c in ("bid", "ask", "volume")]
    return list(zip(us.tolist(), *(c.tolist() for c in cols), strict=True))


def resume(series: Series, store: TickStore, start: str | None, lookback: str, feed_now: pd.Timestamp) -> None:
    """Set the cursor from the store: after its newest row; when it has none, before ``start`` or, without
    one, ``lookback`` before the feed's present (its clock: a replay's is not the wall clock)."""
    last = store.last_timestamp(series.symbol, series.timeframe)
    if last is None:
        first = to_utc(start) if start else feed_now - pd.Timedelta(lookback)
        step = _US if series.timeframe is None else timeframes.parse(series.timeframe).delta
        series.cursor, series.edge = first - step, set()
        return
    series.cursor = last
    if series.timeframe is None:
        series.edge = stored_edge(store, series.symbol, last)


def stored_edge(store: TickStore, symbol: str, last: pd.Timestamp) -> set[tuple]:
    """Keys of the stored ticks in ``last``'s second up to ``last``: what a poll from that second sees again."""
    return set(tick_keys(store.read_ticks(symbol, last.floor("s"), last + _US)))


def poll_ticks(feed: Feed, series: Series, now: pd.Timestamp, span: str) -> Polled:
    # The contract's times are whole seconds: ask from the cursor's own second, so the rows the server sends
    # before the cursor are ones taken already (``edge``), never rows the client would filter away unseen.
    start = series.cursor.floor("s")
    end = min(series.cursor + pd.Timedelta(span), now + pd.Timedelta(milliseconds=1))
    if end <= series.cursor:
        return Polled(pd.DataFrame(), 0, True)
    frame = feed.ticks_range(series.symbol, start, end)
    if frame.empty and end <= now:  # about to step over a past window: a spurious empty answer must not do that
        frame = feed.ticks_range(series.symbol, start, end)
    keys = tick_keys(frame)
    repeated = pd.Series(keys, dtype=object).duplicated().to_numpy()
    fresh = ~repeated
    if series.edge:  # asked for again on purpose: not counted as duplicates
        fresh &= np.fromiter((k not in series.edge for k in keys), dtype=bool, count=len(keys))
    taken = frame.loc[fresh]
    if len(taken):
        last = taken.index.max()
        second = last.floor("s").value // 1_000  # ns -> the keys' microseconds
        kept = series.edge | {k for k, ok in zip(keys, fresh, strict=True) if ok}
        series.edge = {k for k in kept if k[0] >= second}
        series.cursor = max(series.cursor, last)
    elif frame.empty and end <= now and not series.edge:
        # Twice nothing in a window wholly in the feed's past, not even the rows taken in its first second:
        # nothing can appear there any more, move past it.
        series.cursor, series.edge = end - _US, set()
    return Polled(taken, int(repeated.sum()), end > now)


def poll_bars(feed: Feed, series: Series, now: pd.Timestamp, volume: str) -> Polled:
    tf = timeframes.parse(series.timeframe)
    offset = feed.server_offset(series.symbol)
    forming = (now + offset).floor(tf.pandas) - offset  # bars are cut in broker server time (D1: its midnight)
    start = series.cursor + tf.delta
    end = min(forming, start + tf.delta * max(int(feed.max_bars), 1))
    if end <= start:
        return Polled(pd.DataFrame(), 0, True)
    raw = feed.bars_range(series.symbol, tf.mt5, start, end)
    if raw.empty:  # about to step over closed bars: ask twice before believing there are none
        raw = feed.bars_range(series.symbol, tf.mt5, start, end)
    if len(raw):
        bars = engine_bars(raw, volume)
        series.cursor = bars.index.max()
    else:  # a closed stretch without bars (market closed): nothing will appear there any more
        bars = raw
        series.cursor = end - tf.delta
    return Polled(bars, 0, end >= forming and series.cursor >= end - tf.delta)


def engine_bars(raw: pd.DataFrame, volume: str) -> pd.DataFrame:
    """MT5 bar columns (tick_volume, real_volume, spread) to the bar contract's columns."""
    source = "real_volume" if volume == "real" else "tick_volume"
    out = raw[["open", "high", "low", "close"]].astype("float64")
    out["volume"] = raw[source].astype("float64") if source in raw.columns else 0.0
    return out
