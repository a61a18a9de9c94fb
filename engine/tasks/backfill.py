"""task=backfill: history over a range from the connector into the store, in chunks, with a progress bar.

Interrupted (Ctrl-C, SIGTERM, a crash)? Run the same command again: every series resumes after the newest
row the store holds inside the range (engine.ingest.backfill).
"""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from engine.ingest.backfill import BackfillSettings, backfill
from engine.ingest.backfill import Progress as SeriesProgress
from engine.tasks.common import build_store, job_run
from engine.tasks.feed_wiring import build_feed, settings_from, stop_signals


def run(cfg: DictConfig) -> dict[str, float]:
    console = Console(stderr=True, soft_wrap=True)
    settings = settings_from(cfg.task, BackfillSettings)
    with job_run(cfg) as tracked:
        feed = build_feed(cfg, replay=False)
        try:
            with build_store(cfg) as store, stop_signals() as stop:
                if hasattr(store, "create_schema"):
                    store.create_schema()
                console.print(f"[bold]backfill[/]: {feed!r} -> {store.describe()}, from {settings.start} to "
                              f"{settings.end or 'the last closed bar'} in chunks of at most {feed.max_bars:,} bars")
                bar = Progress(TextColumn("{task.description:<16}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                               TextColumn("{task.fields[rows]:>10,} rows"), TimeElapsedColumn(), TimeRemainingColumn(),
                               console=console, disable=not cfg.task.progress)
                tasks: dict[str, int] = {}

                def show(p: SeriesProgress) -> None:
                    if p.name not in tasks:
                        tasks[p.name] = bar.add_task(p.name, total=max(p.total, 1.0), rows=0)
                    bar.update(tasks[p.name], completed=p.done, rows=p.rows)

                with bar:
                    results = backfill(feed, store, settings, on_progress=show, stop=stop)
                complete = not stop.is_set()
        finally:
            feed.close()
        for p in results:
            resumed = f"resumed after {p.resumed_after.isoformat()}; " if p.resumed_after is not None else ""
            console.print(f"  {p.name}: {resumed}{p.rows:,} rows fetched, {p.new_rows:,} new", highlight=False)
        if not complete:
            console.print("[yellow]backfill interrupted[/]: run the same command again to resume")
        metrics = {"rows": float(sum(p.rows for p in results)), "new_rows": float(sum(p.new_rows for p in results)),
                   "complete": float(complete)}
        tracked.log_metrics(metrics)
    return metrics
