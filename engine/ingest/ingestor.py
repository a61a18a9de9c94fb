"""DataIngestor: ticks and closed bars from an MT5 feed into a store, on its own threads, exactly once.

At start every series' cursor comes from the store (``last_timestamp``), so a restart resumes where the store
ends: what was polled but not committed is polled again, and the store's idempotent writes keep a re-sent row
once. Polls are engine.ingest.poll's. Rows go to per-series buffers, written when a buffer reaches
``batch_size`` rows or every ``flush_interval`` seconds. A write that fails is kept whole and retried with
backoff; nothing is dropped. The buffers are bounded: at ``max_buffer_rows`` polling pauses (the rows wait at
the source, which keeps its history) until writes succeed again, and each pause is counted in
``backpressure``. Feed errors (network, timeouts, 5xx, garbled answers) back off and retry; rows with
impossible values are set aside and counted (``rejected``) so they cannot block a batch forever.

Two threads: one polls, one writes, so a slow write never delays the next poll (the whole path runs at about
the slower of the two instead of their sum). The store is used by the writer only, after the poller has read
the resume points from it, so a one-connection store client is never shared between threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import pandas as pd

from engine import timeframes
from engine.errors import BadResponseError, EngineError, RetryableError, StorageError
from engine.ingest.poll import Feed, Polled, Series, poll_bars, poll_ticks, resume
from engine.ingest.settings import IngestSettings
from engine.storage.base import TickStore
from engine.storage.validate import bar_problems, tick_problems

log = logging.getLogger("engine.ingest")

COUNTERS = ("rows_in", "rows_written", "duplicates", "rejected", "feed_errors", "store_errors", "backpressure",
            "batches")
_TRANSIENT_FEED = (RetryableError, BadResponseError)  # network, timeout, 5xx/429, a garbled answer
_TRANSIENT_STORE = (RetryableError, StorageError)  # connection lost, server restarting, statement refused


class Cleaner(Protocol):
    """The optional cleaning hook (engine.data.cleaning.DataCleaner satisfies it)."""

    def clean_ohlcv(self, df: pd.DataFrame) -> pd.DataFrame: ...

    def clean_ticks(self, df: pd.DataFrame) -> pd.DataFrame: ...


class DataIngestor:
    """``DataIngestor(mt5_client, db_client, settings)``; ``start()`` runs it on its own thread, ``stop()``
    writes what it holds and joins. ``counters()`` may be read from any thread.

    ``on_commit(series_name, rows, committed_at_monotonic)`` is called after each successful write."""

    def __init__(self, mt5_client: Feed, db_client: TickStore, settings: IngestSettings | None = None, *,
                 cleaner: Cleaner | None = None,
                 on_commit: Callable[[str, pd.DataFrame, float], None] | None = None) -> None:
        self.feed, self.store = mt5_client, db_client
        self.settings = s = settings or IngestSettings()
        self.cleaner, self.on_commit = cleaner, on_commit
        self._series = [Series(sym, None) for sym in s.symbols if s.ticks]
        self._series += [Series(sym, timeframes.parse(tf).mt5) for sym in s.symbols for tf in s.timeframes]
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lag: dict[str, float] = {}
        self._feed_now: dict[str, pd.Timestamp] = {}  # the feed's clock (its latest tick) at the last poll
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # tells the writer a buffer is full, or to stop
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None
        self._failures = {"feed": 0, "store": 0}  # consecutive, for the backoff
        self._next_poll = self._next_write = self._final_deadline = 0.0
        self._last_log = time.monotonic()

    def __repr__(self) -> str:
        return f"DataIngestor({', '.join(s.name for s in self._series)} -> {self.store.describe()})"

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> DataIngestor:
        if self.running:
            raise RuntimeError("the ingestor is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="engine-ingest", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Write what is buffered and end the thread; True when it ended within ``timeout`` seconds. Rows that
        could not be written stay at the source and are read again by the next start."""
        self._final_deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def counters(self) -> dict[str, float]:
        """rows_in, rows_written, duplicates, rejected, feed/store errors, backpressure, batches, buffered rows
        and lag_seconds (the feed's clock minus the newest written row, worst series)."""
        with self._lock:
            out: dict[str, float] = dict(self._counts)
            out["buffered"] = sum(s.rows for s in self._series)
            out["lag_seconds"] = max(self._lag.values(), default=0.0)
        return out

    def raise_if_failed(self) -> None:
        """Re-raise what ended the thread early (bad credentials, a refused symbol), for the caller's thread."""
        if isinstance(self.failure, EngineError):
            raise self.failure
        if self.failure is not None:
            raise RuntimeError(f"the ingest thread died: {self.failure!r}") from self.failure

    # -- the threads ----------------------------------------------------------------------------------
    def _run(self) -> None:
        """The polling thread; writes run on a second thread so that a slow write does not stall the polls."""
        writer: threading.Thread | None = None
        try:
            self._resume()
            writer = threading.Thread(target=self._write_loop, name="engine-ingest-writer", daemon=True)
            writer.start()
            while not self._stop.is_set():
                if time.monotonic() >= self._next_poll:
                    self._poll_all()
                if time.monotonic() - self._last_log >= self.settings.log_interval:
                    self._log()
                self._stop.wait(max(0.0, self._next_poll - time.monotonic()))
        except BaseException as exc:  # kept for the task to re-raise: a thread must not die silently
            self._fail(exc)
        finally:
            if not self._final_deadline:  # ended by a failure, not by stop(): still write what is buffered
                self._final_deadline = time.monotonic() + 30.0
            self._stop.set()
            self._wake.set()
            if writer is not None:
                writer.join(max(0.0, self._final_deadline - time.monotonic()))
            self._log()

    def _write_loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._write(force=False)
                self._wake.wait(max(0.0, min(self._due(), time.monotonic() + 1.0) - time.monotonic()))
                self._wake.clear()
            self._drain()
        except BaseException as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.failure = self.failure or exc
        log.error("ingest: stopped by %s: %s", type(exc).__name__, exc)
        self._stop.set()
        self._wake.set()

    def _resume(self) -> None:
        s = self.settings
        for series in self._series:
            while series.cursor is None and not self._stop.is_set():
                try:
                    now = self.feed.latest_tick(series.symbol)["time"]
                    resume(series, self.store, s.start, s.lookback, now)
                except _TRANSIENT_FEED as exc:
                    self._count("feed_errors")
                    self._stop.wait(self._backoff("feed", exc))
                except _TRANSIENT_STORE as exc:
                    self._count("store_errors")
                    self._stop.wait(self._backoff("store", exc))
            if series.cursor is not None:
                log.info("ingest: %s resumes after %s", series.name, series.cursor.isoformat())

    def _poll_all(self) -> None:
        if self._buffered() >= self.settings.max_buffer_rows:
            self._count("backpressure")
            log.warning("ingest: %d rows buffered (max_buffer_rows); polling paused until writes succeed",
                        self._buffered())
            self._next_poll = time.monotonic() + self.settings.poll_interval
            return
        caught_up = True
        try:
            for series in self._series:
                caught_up &= self._poll(series)
        except _TRANSIENT_FEED as exc:
            self._count("feed_errors")
            self._next_poll = time.monotonic() + self._backoff("feed", exc)
            return
        self._failures["feed"] = 0
        self._next_poll = time.monotonic() + (self.settings.poll_interval if caught_up else 0.0)

    def _poll(self, series: Series) -> bool:
        now = self.feed.latest_tick(series.symbol)["time"]
        self._feed_now[series.symbol] = now
        if series.timeframe is None:
            polled: Polled = poll_ticks(self.feed, series, now, self.settings.tick_span)
        else:
            polled = poll_bars(self.feed, series, now, self.settings.bar_volume)
        self._count("duplicates", polled.duplicates)
        rows, rejected = checked(series, polled.rows, self.cleaner) if len(polled.rows) else (polled.rows, 0)
        self._count("rejected", rejected)
        if len(rows):
            with self._lock:
                first = not series.buffer
                series.buffer.append(rows)
                series.rows += len(rows)
                series.oldest = series.oldest or time.monotonic()
                self._counts["rows_in"] += len(rows)
            if first or series.rows >= self.settings.batch_size:  # the writer learns a due time, or writes now
                self._wake.set()
        return polled.caught_up

    # -- writing --------------------------------------------------------------------------------------
    def _due(self) -> float:
        """Monotonic time at which the next write is due (inf when nothing is buffered)."""
        times = [s.oldest + self.settings.flush_interval for s in self._series if s.oldest is not None]
        return max(min(times, default=float("inf")), self._next_write)

    def _write(self, force: bool) -> bool:
        """Write full or due buffers (every one with ``force``); False when a write failed (kept, retried)."""
        now = time.monotonic()
        if now < self._next_write:
            return False
        for series in self._series:
            with self._lock:  # the poller appends meanwhile; what is written here is this snapshot
                frames, oldest = list(series.buffer), series.oldest
            due = frames and (force or sum(map(len, frames)) >= self.settings.batch_size
                              or now - oldest >= self.settings.flush_interval)
            if not due:
                continue
            batch = pd.concat(frames) if len(frames) > 1 else frames[0]
            try:
                if series.timeframe is None:
                    new = self.store.write_ticks(batch, series.symbol)
                else:
                    new = self.store.write_bars(batch, series.symbol, series.timeframe)
            except _TRANSIENT_STORE as exc:
                self._count("store_errors")
                self._next_write = time.monotonic() + self._backoff("store", exc)
                return False
            committed = time.monotonic()
            with self._lock:
                del series.buffer[:len(frames)]
                series.rows -= len(batch)
                series.oldest = committed if series.buffer else None
                self._counts["rows_written"] += new
                self._counts["duplicates"] += len(batch) - new
                self._counts["batches"] += 1
                # On the feed's clock (a replay's is not the wall clock); a bar exists from its close.
                newest = batch.index.max() + (timeframes.parse(series.timeframe).delta if series.timeframe
                                              else pd.Timedelta(0))
                self._lag[series.name] = max(0.0, (self._feed_now.get(series.symbol, newest) - newest).total_seconds())
            self._failures["store"] = 0
            if self.on_commit is not None:
                self.on_commit(series.name, batch, committed)
        return True

    def _drain(self) -> None:
        """The writes of ``stop()``: retried with backoff until done or the stop timeout has passed."""
        while self._buffered() and time.monotonic() < self._final_deadline:
            self._next_write = 0.0
            if self._write(force=True):
                break
            wait = min(self._delay(self._failures["store"]), self._final_deadline - time.monotonic())
            time.sleep(max(0.0, wait))
        if self._buffered():
            log.warning("ingest: stopped with %d rows unwritten; the next start reads them from the feed again",
                        self._buffered())

    # -- helpers --------------------------------------------------------------------------------------
    def _buffered(self) -> int:
        with self._lock:
            return sum(s.rows for s in self._series)

    def _count(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self._counts[name] += n

    def _delay(self, failures: int) -> float:
        return min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** min(failures, 30))

    def _backoff(self, what: str, exc: BaseException) -> float:
        delay = self._delay(self._failures[what])
        self._failures[what] += 1
        log.warning("ingest: %s error (%s); retrying in %.1fs", what, str(exc).splitlines()[0] if str(exc) else
                    type(exc).__name__, delay)
        return delay

    def _log(self) -> None:
        self._last_log = time.monotonic()
        log.info("ingest: %s", describe(self.counters()))


def checked(series: Series, frame: pd.DataFrame, cleaner: Cleaner | None) -> tuple[pd.DataFrame, int]:
    """The rows after the cleaner, less those with impossible values (logged): set aside so that they cannot
    block a batch forever; and how many were set aside."""
    if series.timeframe is None:
        frame = cleaner.clean_ticks(frame) if cleaner else frame
        bad = tick_problems(frame)
    else:
        frame = cleaner.clean_ohlcv(frame) if cleaner else frame
        bad = bar_problems(frame)
    if not bad:
        return frame, 0
    first = min(bad)
    log.warning("ingest: %s: %d row(s) with impossible values set aside; first at %s: %s", series.name, len(bad),
                frame.index[first].isoformat(), bad[first])
    return frame.iloc[[i for i in range(len(frame)) if i not in bad]], len(bad)


def describe(c: dict[str, float]) -> str:
    return (f"in {c['rows_in']:.0f}, written {c['rows_written']:.0f}, duplicates {c['duplicates']:.0f}, rejected "
            f"{c['rejected']:.0f}, buffered {c['buffered']:.0f}, lag {c['lag_seconds']:.1f}s, feed errors "
            f"{c['feed_errors']:.0f}, store errors {c['store_errors']:.0f}, backpressure {c['backpressure']:.0f}")
