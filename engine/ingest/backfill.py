"""Backfill: history over a range, fetched in chunks under the terminal's max-bars cap, resumable.

Each chunk is one request of at most ``max_bars`` bars (or ``tick_span`` of ticks) through the same polls as
the live ingestor (engine.ingest.poll), written before the next is asked for. A run that is interrupted
(Ctrl-C, a crash, a lost connection) is resumed by running it again: each series starts after the newest row
the store already holds inside the range, and the store's idempotent writes absorb the overlap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine import timeframes
from engine.data.frames import to_utc
from engine.errors import ConfigError
from engine.storage.base import TickStore

# The polls (and pandas) load when a backfill runs: the task config schema includes BackfillSettings.
if TYPE_CHECKING:
    import pandas as pd

    from engine.ingest.poll import Feed, Series

log = logging.getLogger("engine.ingest")


@dataclass(frozen=True)
class BackfillSettings:
    symbols: tuple[str, ...] = ("BTCUSD",)
    timeframes: tuple[str, ...] = ("M1",)
    ticks: bool = False
    start: str = "2024-03-01T00:00:00Z"  # UTC, inclusive
    end: str | None = None  # UTC, exclusive; None = up to the last closed bar (and the latest tick)
    tick_span: str = "10min"
    bar_volume: str = "real"

    def __post_init__(self) -> None:
        if not self.symbols or (not self.ticks and not self.timeframes):
            raise ConfigError("task.symbols", "name at least one symbol and a timeframe (or ticks=true)")
        try:
            start, end = to_utc(self.start), to_utc(self.end) if self.end else None
        except ValueError as exc:
            raise ConfigError("task.start", f"unreadable time ({exc}); use ISO 8601 such as 2024-03-01") from None
        if end is not None and end <= start:
            raise ConfigError("task.end", f"end {self.end} must be after start {self.start}")
        for tf in self.timeframes:
            if timeframes.parse(tf, "task.timeframes").mt5 == "MN1":
                raise ConfigError("task.timeframes", "MN1 has no fixed length; backfill M1..W1")


@dataclass
class Progress:
    """Where one series stands: ``done`` of ``total`` seconds of its range, and rows written."""

    name: str
    total: float
    done: float = 0.0
    rows: int = 0
    new_rows: int = 0
    resumed_after: pd.Timestamp | None = None  # the newest row already stored in the range, when there was one


def _resume_point(store: TickStore, series: Series, start: pd.Timestamp, end: pd.Timestamp) -> pd.Timestamp | None:
    """Newest row the store holds inside ``[start, end)``: where an interrupted run continues."""
    if series.timeframe is None:
        stored = store.read_ticks(series.symbol, start, end)
    else:
        stored = store.read_bars(series.symbol, series.timeframe, start, end)
    return None if stored.empty else stored.index.max()


def backfill(feed: Feed, store: TickStore, settings: BackfillSettings, *,
             on_progress: Callable[[Progress], None] | None = None,
             stop: threading.Event | None = None) -> list[Progress]:
    """Fetch and store every series over the range; returns each series' progress (complete unless stopped)."""
    from engine.ingest.poll import Series

    stop = stop or threading.Event()
    start = to_utc(settings.start)
    out = []
    for symbol in settings.symbols:
        feed_now = feed.latest_tick(symbol)["time"]
        end = min(to_utc(settings.end), feed_now) if settings.end else feed_now
        series_list = [Series(symbol, None)] if settings.ticks else []
        series_list += [Series(symbol, timeframes.parse(tf).mt5) for tf in settings.timeframes]
        for series in series_list:
            out.append(_one(feed, store, series, start, end, settings, on_progress, stop))
            if stop.is_set():
                return out
    return out


def _one(feed: Feed, store: TickStore, series: Series, start: pd.Timestamp, end: pd.Timestamp,
         settings: BackfillSettings, on_progress: Callable[[Progress], None] | None,
         stop: threading.Event) -> Progress:
    import pandas as pd

    from engine.ingest.poll import poll_bars, poll_ticks, stored_edge

    step = pd.Timedelta(microseconds=1) if series.timeframe is None else timeframes.parse(series.timeframe).delta
    progress = Progress(series.name, max((end - start).total_seconds(), 0.0))
    last = _resume_point(store, series, start, end)
    series.cursor = start - step if last is None else last
    if last is not None:
        progress.done, progress.resumed_after = (last - start).total_seconds(), last
        if series.timeframe is None:
            series.edge = stored_edge(store, series.symbol, last)
        log.info("backfill: %s resumes after %s", series.name, last.isoformat())
    # The polls treat "now" as the feed's present: the range's end plays that part here.
    horizon = end - pd.Timedelta(milliseconds=1) if series.timeframe is None else end
    quiet = 0
    while not stop.is_set():
        if series.timeframe is None:
            polled = poll_ticks(feed, series, horizon, settings.tick_span)
            rows = polled.rows
            new = store.write_ticks(rows, series.symbol) if len(rows) else 0
            # A tick answer may have been cut short: done when the last window twice brought nothing new.
            quiet = quiet + 1 if polled.caught_up and not len(rows) else 0
            done = quiet >= 2
        else:
            polled = poll_bars(feed, series, horizon, settings.bar_volume)
            rows = polled.rows
            new = store.write_bars(rows, series.symbol, series.timeframe) if len(rows) else 0
            done = polled.caught_up
        progress.rows += len(rows)
        progress.new_rows += new
        progress.done = min(progress.total, max(0.0, (series.cursor + step - start).total_seconds()))
        if on_progress is not None:
            on_progress(progress)
        if done:
            progress.done = progress.total
            if on_progress is not None:
                on_progress(progress)
            break
    return progress
