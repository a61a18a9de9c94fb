"""task=ingest: the DataIngestor from config, with a live terminal display, until Ctrl-C / SIGTERM.

Against ``connector=simulator`` (the default) the embedded simulator's replay clock runs at
``task.replay_speed`` from ``task.replay_start``, unless the connector config sets its own speed/start. The run
ends on Ctrl-C or SIGTERM (both stop it cleanly: buffers are written, the thread joined), after
``task.duration`` seconds, or by itself after ``task.smoke_seconds`` with ``smoke=true``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig
from rich.console import Console
from rich.live import Live
from rich.table import Table

from engine.config.build import build
from engine.data.cleaning import DataCleaner
from engine.ingest import DataIngestor, IngestSettings
from engine.tasks.common import build_store, job_run
from engine.tasks.feed_wiring import build_feed, settings_from, stop_signals


class Display:
    """Rows/s, lag and errors: a live table on a terminal, a line per interval otherwise (logs, CI)."""

    def __init__(self, console: Console, ingestor: DataIngestor) -> None:
        self.console, self.ingestor = console, ingestor
        self.t0 = self.t_last = time.monotonic()
        self.last_written = 0.0
        self.rate = 0.0

    def table(self, c: dict[str, float]) -> Table:
        table = Table(title=f"ingest {self.ingestor!r}", title_justify="left")
        for col in ("elapsed", "rows/s", "written", "in", "dup", "rejected", "buffered", "lag", "feed err",
                    "store err"):
            table.add_column(col, justify="right")
        table.add_row(f"{time.monotonic() - self.t0:.0f}s", f"{self.rate:,.0f}", f"{c['rows_written']:,.0f}",
                      f"{c['rows_in']:,.0f}", f"{c['duplicates']:,.0f}", f"{c['rejected']:,.0f}",
                      f"{c['buffered']:,.0f}", f"{c['lag_seconds']:.1f}s", f"{c['feed_errors']:,.0f}",
                      f"{c['store_errors']:,.0f}")
        return table

    def sample(self) -> dict[str, float]:
        c = self.ingestor.counters()
        now = time.monotonic()
        self.rate = (c["rows_written"] - self.last_written) / max(now - self.t_last, 1e-9)
        self.last_written, self.t_last = c["rows_written"], now
        return c

    def line(self, c: dict[str, float]) -> str:
        return (f"ingest {time.monotonic() - self.t0:6.1f}s  {self.rate:9,.0f} rows/s  written {c['rows_written']:,.0f}"
                f"  lag {c['lag_seconds']:.1f}s  dup {c['duplicates']:,.0f}  rejected {c['rejected']:,.0f}  "
                f"errors feed {c['feed_errors']:,.0f} store {c['store_errors']:,.0f}  buffered {c['buffered']:,.0f}")


def _watch(ingestor: DataIngestor, stop: threading.Event, limit: float | None, console: Console,
           task: DictConfig) -> None:
    display = Display(console, ingestor)
    deadline = None if limit is None else time.monotonic() + limit
    live = Live(display.table(display.sample()), console=console, auto_refresh=False) \
        if task.display and console.is_terminal else None
    with live if live is not None else _nothing():
        while ingestor.running and not stop.wait(float(task.display_interval)):
            counts = display.sample()
            if live is not None:
                live.update(display.table(counts), refresh=True)
            elif task.display:
                console.print(display.line(counts), highlight=False)
            if deadline is not None and time.monotonic() >= deadline:
                break


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def run(cfg: DictConfig) -> dict[str, float]:
    console = Console(stderr=True, soft_wrap=True)
    settings = settings_from(cfg.task, IngestSettings)
    limit = float(cfg.task.smoke_seconds) if cfg.smoke else (None if cfg.task.duration is None
                                                             else float(cfg.task.duration))
    with job_run(cfg) as tracked:
        feed = build_feed(cfg, replay=True)
        try:
            with build_store(cfg) as store:
                if hasattr(store, "create_schema"):
                    store.create_schema()
                cleaner = build(cfg.cleaner, DataCleaner, key="cleaner") if cfg.task.clean else None
                ingestor = DataIngestor(feed, store, settings, cleaner=cleaner)
                console.print(f"[bold]ingest[/]: {feed!r} -> {store.describe()} (Ctrl-C or SIGTERM stops cleanly)")
                t0 = time.monotonic()
                with stop_signals() as stop:
                    ingestor.start()
                    _watch(ingestor, stop, limit, console, cfg.task)
                    clean = ingestor.stop(float(cfg.task.stop_timeout))
                ingestor.raise_if_failed()
        finally:
            feed.close()
        elapsed = time.monotonic() - t0
        metrics = {k: float(v) for k, v in ingestor.counters().items()}
        metrics |= {"seconds": elapsed, "rows_per_second": metrics["rows_written"] / max(elapsed, 1e-9),
                    "stopped_cleanly": float(clean)}
        console.print(f"[bold]ingest[/]: stopped {'cleanly' if clean else 'with rows unwritten'} after "
                      f"{elapsed:.1f}s: {metrics['rows_written']:,.0f} rows written "
                      f"({metrics['rows_per_second']:,.0f}/s), {metrics['duplicates']:,.0f} duplicates, "
                      f"{metrics['rejected']:,.0f} rejected, {metrics['feed_errors']:,.0f} feed and "
                      f"{metrics['store_errors']:,.0f} store errors")
        tracked.log_metrics(metrics)
    return metrics
