"""task=features: the cleaned bars task=clean stored -> the feature set's columns -> Parquet.

The second step of the dataset, stored: :func:`engine.data.dataset.feature_frame` with the run's
``features`` group on ``${paths.clean}/<symbol>_<bar size>.parquet``, where the bar size is the feature set's
first timeframe (as in the dataset). The bars and their features go to one file,
``${paths.features}/<symbol>_<bar size>.parquet``, which ``task=train task.features_from=${paths.features}``
reads instead of recomputing (the dvc.yaml features stage).
"""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig
from rich.console import Console

from engine import timeframes
from engine.config.build import build
from engine.data.dataset import feature_frame, settings_of
from engine.data.features import FeatureEngineering
from engine.errors import DataQualityError
from engine.tasks.common import job_run, phase
from engine.tasks.stage_data import read_frame, stage_file, write_frame


def run(cfg: DictConfig) -> dict[str, float]:
    console = Console(stderr=True, soft_wrap=True)
    symbol = str(cfg.symbol)
    features = build(cfg.features, FeatureEngineering, key="features")
    bar_tf = timeframes.parse(features.timeframes[0], key="features.timeframes")
    source = stage_file(str(cfg.paths.clean), symbol, bar_tf)
    out = stage_file(str(cfg.paths.features), symbol, bar_tf)
    size_hint = "" if bar_tf == timeframes.parse(cfg.timeframe) else f" task.bar_size={bar_tf.mt5}"
    with job_run(cfg) as tracked:
        stored = read_frame(source, make=f"run task=clean{size_hint} first (`dvc repro clean`): the feature set "
                                         f"starts at {bar_tf.pandas}, so it is made on {bar_tf.mt5} bars")
        if stored.meta.get("symbol") != symbol:
            raise DataQualityError(f"{source} holds {stored.meta.get('symbol')} bars, not {symbol}")
        tracked.set_tags({"data_fingerprint": str(stored.meta["fingerprint"]), "data_source": str(source),
                          "output": str(out)})
        bars = stored.frame
        with phase(console, f"features ({', '.join(features.timeframes)})"):
            feats = feature_frame(features, bars)
        clash = sorted(set(feats.columns) & set(bars.columns))
        if clash:
            raise DataQualityError(f"feature column(s) {clash} have the names of bar columns")
        names = [str(c) for c in feats.columns]
        meta = {**stored.meta, "features": settings_of(features), "feature_names": names}
        with phase(console, f"write {out}"):
            write_frame(out, pd.concat([bars, feats], axis=1), meta)
        complete = int(feats.notna().all(axis=1).sum())
        metrics = {"rows": float(len(feats)), "n_features": float(len(names)), "complete_rows": float(complete)}
        tracked.log_metrics(metrics)
        console.print(f"[bold]features[/]: {source} -> {out} ({len(names)} features, {complete:,} of "
                      f"{len(feats):,} rows complete)")
    return metrics
