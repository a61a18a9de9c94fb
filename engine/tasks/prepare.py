"""task=prepare: read the configured source, check it, and write it to the configured store."""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console

from engine import timeframes
from engine.data.frames import fingerprint, summarize_bars
from engine.errors import DataQualityError
from engine.tasks.common import build_store, job_run, load_bars


def run(cfg: DictConfig) -> dict[str, float]:
    console = Console(stderr=True, soft_wrap=True)
    tf = timeframes.parse(cfg.timeframe)
    with job_run(cfg) as tracked:
        bars, source = load_bars(cfg)
        summary = summarize_bars(bars, tf.delta)
        tracked.set_tags({"data_fingerprint": fingerprint(bars), "data_source": source.describe()})
        if summary.rows == 0:
            raise DataQualityError(f"{source.describe()} returned no {cfg.symbol} {tf.mt5} bars; check source.start/end")
        missing_fraction = summary.missing / summary.expected
        if missing_fraction > cfg.task.max_missing_fraction:
            raise DataQualityError(
                f"{source.describe()}: {summary.missing:,} of {summary.expected:,} bars missing "
                f"({missing_fraction:.2%}) exceeds task.max_missing_fraction={cfg.task.max_missing_fraction}; "
                "nothing was written")
        with build_store(cfg) as store:
            if hasattr(store, "create_schema"):
                store.create_schema()
            new_rows = store.write_bars(bars, str(cfg.symbol), tf.mt5)
            target = store.describe()
        console.print(f"[bold]prepare[/]: {source.describe()} -> {target}")
        for line in summary.lines():
            console.print(f"  {line}")
        console.print(f"  new rows stored: {new_rows:,}")
        metrics = {
            "rows": float(summary.rows), "new_rows": float(new_rows), "missing_bars": float(summary.missing),
            "gaps": float(summary.gaps), "largest_gap_minutes": summary.largest_gap.total_seconds() / 60,
        }
        tracked.log_metrics(metrics)
        tracked.log_dict({"source": source.describe(), "store": target, "summary": summary.lines()},
                         "prepare/summary.json")
    return metrics
