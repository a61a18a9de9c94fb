"""task=clean: the stored bars (task=prepare's, in the configured storage) -> resample -> clean -> Parquet.

The first step of the dataset, stored: :func:`engine.data.dataset.clean_bars` with the run's ``cleaner`` and
``task.bar_size``, exactly as ``task=train`` would clean, written to ``${paths.clean}/<symbol>_<bar size>.parquet``
for ``task=features`` (the dvc.yaml clean stage). ``smoke=true`` keeps the last 20,000 stored bars here, where
bars are loaded, as ``task=train`` does when it loads them; a train reading the stored features takes them as
they are.
"""

from __future__ import annotations

from omegaconf import DictConfig
from rich.console import Console

from engine import timeframes
from engine.config.build import build
from engine.data.cleaning import DataCleaner
from engine.data.dataset import check_causal, clean_bars, settings_of
from engine.data.frames import BAR_COLUMNS, fingerprint
from engine.errors import ConfigError, DataQualityError
from engine.tasks.common import SMOKE_BARS, build_store, job_run, phase
from engine.tasks.stage_data import stage_file, write_frame


def run(cfg: DictConfig) -> dict[str, float]:
    console = Console(stderr=True, soft_wrap=True)
    symbol = str(cfg.symbol)
    base = timeframes.parse(cfg.timeframe)
    target = timeframes.parse(cfg.task.bar_size, key="task.bar_size") if cfg.task.bar_size else base
    if target.seconds < base.seconds:
        raise ConfigError("task.bar_size", f"{target.mt5} is finer than the stored {base.mt5} bars")
    cleaner = build(cfg.cleaner, DataCleaner, key="cleaner") if cfg.get("cleaner") is not None else None
    check_causal(cleaner)  # the cleaned bars feed models: the same refusal as the dataset builder's
    out = stage_file(str(cfg.paths.clean), symbol, target)
    with job_run(cfg) as tracked:
        with phase(console, "load stored bars"), build_store(cfg) as store:
            bars = store.read_bars(symbol, base.mt5)
            described = store.describe()
        if not len(bars):
            raise DataQualityError(f"{described} holds no {symbol} {base.mt5} bars: run task=prepare first "
                                   "(`dvc repro prepare`)")
        if cfg.smoke and len(bars) > SMOKE_BARS:
            bars = bars.iloc[-SMOKE_BARS:]
        data_fp = fingerprint(bars)
        tracked.set_tags({"data_fingerprint": data_fp, "data_source": described, "output": str(out)})
        cleaned, report = clean_bars(bars, base, target, cleaner, progress=lambda name: phase(console, name))
        meta = {"symbol": symbol, "timeframe": base.mt5, "bar_timeframe": target.mt5,
                "cleaner": settings_of(cleaner), "clean_report": report, "fingerprint": data_fp,
                "source": described, "bar_columns": [c for c in cleaned.columns if c in BAR_COLUMNS]}
        with phase(console, f"write {out}"):
            write_frame(out, cleaned.loc[:, meta["bar_columns"]], meta)
        metrics = {"rows_in": float(len(bars)), "rows": float(len(cleaned))}
        metrics |= {f"clean_{k}": float(v) for k, v in report.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)}
        tracked.log_metrics(metrics)
        console.print(f"[bold]clean[/]: {described} -> {out} ({len(bars):,} {base.mt5} bars in, "
                      f"{len(cleaned):,} {target.mt5} bars out)")
    return metrics
