"""task=train: bars -> (resample) -> clean -> features -> labels -> fit -> evaluate -> log -> save.

Evaluation covers the validation and the test span: classification metrics of the predicted class
probabilities and trading metrics of a next-bar backtest of the signals they imply (``backtest`` group).
Every metric is returned, so ``task.objective`` can name any of them for a Hydra sweeper.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from engine import timeframes
from engine.config.build import build
from engine.config.groups_model import SEQUENCE_MODELS
from engine.data.frames import fingerprint
from engine.errors import ConfigError, DataQualityError
from engine.tasks.common import job_run, load_bars
from engine.tracking.mlflow import Run

MODEL_FILE = "pipeline.zip"
SMOKE_REPORT_SAMPLES = 100  # rows for permutation importance in smoke mode (one prediction per feature)


@contextmanager
def phase(console: Console, name: str) -> Iterator[None]:
    """One line per phase with its duration; a spinner while it runs."""
    start = time.perf_counter()
    with console.status(f"[bold]{name}[/] ..."):
        yield
    console.print(f"[green]done[/] {name} [dim]({time.perf_counter() - start:.1f}s)[/]")


@dataclass
class Dataset:
    """Samples ready for a model. Sample ``i`` is decided at the close of bar ``index[i]``."""

    bars: pd.DataFrame  # cleaned bars at the task's bar size (prices for the backtest)
    X: Any  # 2-D feature frame, or [n, seq, features] windows for sequence models
    y: np.ndarray
    index: pd.DatetimeIndex
    feature_names: list[str]
    splits: tuple[slice, slice, slice]  # train, val, test over samples
    horizon: int
    n_classes: int
    bar_seconds: int
    embargo: int
    clean_report: dict[str, Any]
    source: str
    fingerprint: str

    def take(self, span: slice) -> Any:
        return self.X.iloc[span] if isinstance(self.X, pd.DataFrame) else self.X[span]


def _seq_len(cfg: DictConfig) -> int | None:
    return int(cfg.model.seq_len) if cfg.model.type in SEQUENCE_MODELS else None


def build_dataset(cfg: DictConfig, console: Console) -> Dataset:
    """Everything train and explain share: the same config always yields the same samples and splits."""
    from engine.data.cleaning import DataCleaner
    from engine.data.datasets import chronological_split, sequence_windows
    from engine.data.features import FeatureEngineering, resample_bars
    from engine.data.labels import LabelSpec

    for group in ("features", "labels"):
        if cfg.get(group) is None:
            raise ConfigError(group, f"task={cfg.task.name} needs a {group} group; pick one, e.g. {group}=standard")
    cleaner_cfg = cfg.get("cleaner")
    if cleaner_cfg is not None and cleaner_cfg.get("enabled", True) and not cleaner_cfg.get("causal", True):
        # centred windows (and a whole-sample Isolation Forest) decide which bars survive with later bars
        raise ConfigError("cleaner.causal", f"task={cfg.task.name} feeds a model, so cleaning must judge each bar "
                                            "with earlier bars only; set cleaner.causal=true (or cleaner=off)")
    with phase(console, "load bars"):
        bars, source = load_bars(cfg)
        data_fp = fingerprint(bars)
    base = timeframes.parse(cfg.timeframe)
    tf = base
    if cfg.task.bar_size:
        tf = timeframes.parse(cfg.task.bar_size, key="task.bar_size")
        if tf.seconds < base.seconds:
            raise ConfigError("task.bar_size", f"{tf.mt5} is finer than the loaded {base.mt5} bars")
        with phase(console, f"resample {base.mt5} -> {tf.mt5}"):
            last_close = bars.index[-1] + pd.Timedelta(seconds=base.seconds) if len(bars) else None
            bars = resample_bars(bars, tf)
            if last_close is not None and bars.index[-1] + pd.Timedelta(seconds=tf.seconds) > last_close:
                # the data ends inside this bar: its "close" is not the bar's close, so it is no bar yet
                bars = bars.iloc[:-1]
    clean_report: dict[str, Any] = {}
    if cfg.get("cleaner") is not None:
        with phase(console, "clean"):
            cleaner = build(cfg.cleaner, DataCleaner, key="cleaner")
            bars = cleaner.clean_ohlcv(bars)
            clean_report = dict(cleaner.report_.as_dict())
    with phase(console, "features + labels"):
        fe = build(cfg.features, FeatureEngineering, key="features")
        feature_base = timeframes.parse(fe.timeframes[0], key="features.timeframes")
        if feature_base != tf:
            raise ConfigError("features.timeframes", f"starts with {fe.timeframes[0]} but the task trains on "
                                                     f"{tf.mt5} bars; make {tf.pandas} the first feature timeframe "
                                                     "(or set task.bar_size)")
        feats = fe.transform(bars)
        names = list(fe.feature_names_)
        spec = build(cfg.labels, LabelSpec, key="labels")
        labels = spec.make(bars["close"])  # kept apart from the features: it looks forward
        feats = feats.loc[:, names]
        complete = feats.notna().all(axis=1).to_numpy()
        labelled = labels.notna().to_numpy()
        seq = _seq_len(cfg)
        if seq is None:
            keep = complete & labelled
            X: Any = feats.loc[keep]
            y = labels.to_numpy()[keep].astype("int64")
            index = pd.DatetimeIndex(feats.index[keep])
        else:
            X, y, index = _windows(feats, complete, labelled, labels.to_numpy(), seq, sequence_windows)
    embargo = max(int(cfg.task.embargo or 0), int(spec.horizon))
    splits = chronological_split(len(y), float(cfg.task.val_frac), float(cfg.task.test_frac), embargo)
    for name, span in zip(("train", "val", "test"), splits, strict=True):
        if span.stop - span.start < 10:
            raise DataQualityError(f"the {name} span holds {span.stop - span.start} samples; load more bars "
                                   "(smoke mode keeps the last 20,000 base bars) or change task.*_frac")
    console.print(f"dataset: {len(y):,} samples x {len(names)} features at {tf.mt5} "
                  f"(train {splits[0].stop - splits[0].start:,} / val {splits[1].stop - splits[1].start:,} / "
                  f"test {splits[2].stop - splits[2].start:,}, embargo {embargo} bars)")
    return Dataset(bars=bars, X=X, y=y, index=index, feature_names=names, splits=splits, horizon=int(spec.horizon),
                   n_classes=int(spec.n_classes), bar_seconds=tf.seconds, embargo=embargo,
                   clean_report=clean_report, source=source.describe(), fingerprint=data_fp)


def _windows(feats: pd.DataFrame, complete: np.ndarray, labelled: np.ndarray, labels: np.ndarray, seq: int,
             sequence_windows: Any) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Windows of ``seq`` consecutive rows, all with complete features, ending on a labelled row.

    Usually that is one contiguous block (warm-up rows at the start, unlabelled rows at the end) and the
    windows stay a view; rows missing in the middle force a copy of the valid windows.
    """
    n = len(feats)
    if n < seq:
        raise DataQualityError(f"{n} rows are fewer than model.seq_len={seq}; load more bars or shorten the window")
    # a window ending at row i is valid when rows i-seq+1..i are all complete and row i is labelled
    run = np.convolve(complete.astype("int64"), np.ones(seq, dtype="int64"), mode="valid")
    valid = (run == seq) & labelled[seq - 1:]
    where = np.flatnonzero(valid)
    if where.size == 0:
        raise DataQualityError(f"no window of {seq} rows with complete features and a label; load more bars")
    windows = sequence_windows(np.nan_to_num(feats.to_numpy(dtype="float32")), seq)
    contiguous = where[-1] - where[0] + 1 == where.size
    X = windows[where[0]:where[-1] + 1] if contiguous else windows[where]
    ends = where + seq - 1
    return X, labels[ends].astype("int64"), pd.DatetimeIndex(feats.index[ends])


def trainer_settings(cfg: DictConfig) -> Any:
    from engine.pipeline import TrainerSettings

    t = OmegaConf.to_container(cfg.trainer, resolve=True) if cfg.get("trainer") is not None else {}
    if cfg.smoke and "max_epochs" in t:
        t["max_epochs"] = min(int(t["max_epochs"]), int(cfg.task.smoke_max_epochs))
    return TrainerSettings(**t)


def _device(cfg: DictConfig) -> str:
    accel = str(cfg.trainer.accelerator) if cfg.get("trainer") is not None else "cpu"
    return {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda"}.get(accel, "auto")


def model_dir(cfg: DictConfig) -> Path:
    """${paths.models}/<model_name>/; sweep trials get their own sub-directory so they never collide."""
    path = Path(str(cfg.paths.models)) / str(cfg.task.model_name)
    try:
        hc = HydraConfig.get()
        if str(hc.mode) == "RunMode.MULTIRUN":
            path = path / f"trial_{hc.job.num}"
    except ValueError:
        pass
    return path


def evaluate(pipe: Any, data: Dataset, span: slice, name: str, settings: Any) -> tuple[dict[str, float], Any, Any]:
    """Classification metrics and the next-bar backtest of one span; keys prefixed ``<name>_``."""
    from engine.metrics import classification_metrics
    from engine.trading.backtest import class_probabilities, run_backtest, signals_from_proba

    proba = np.asarray(pipe.predict_proba(data.take(span)), dtype="float64")
    metrics = classification_metrics(data.y[span], proba)
    p_up, p_down = class_probabilities(proba)
    stamps = data.index[span]
    signals = pd.Series(signals_from_proba(p_up, p_down, settings), index=stamps)
    result = run_backtest(signals, data.bars.loc[stamps, ["open", "close"]], settings, bar_seconds=data.bar_seconds)
    metrics |= result.metrics
    return {f"{name}_{k}": float(v) for k, v in metrics.items()}, proba, result


def check_objective(name: str | None) -> None:
    """Refuse, before any work, an objective the task will never return (a sweep would fail on every trial)."""
    from engine.metrics import METRIC_NAMES as CLASSIFICATION
    from engine.trading.backtest import METRIC_NAMES as TRADING

    if name is None:
        return
    if name.startswith("test_"):
        # A sweep that maximises a test metric picks hyperparameters on the held-out span.
        raise ConfigError("task.objective", f"{name!r} would select on the held-out test span; optimise "
                                            f"val_{name.removeprefix('test_')} instead")
    known = {f"{span}_{m}" for span in ("val", "test") for m in (*CLASSIFICATION, *TRADING)}
    known |= {"fit_seconds", "n_train", "n_val", "n_test", "n_features"}
    if name not in known and not name.startswith(("fit_", "clean_")):
        raise ConfigError("task.objective", f"{name!r} is not a metric task=train returns; use val_<m> "
                                            f"with m one of {', '.join((*CLASSIFICATION, *TRADING))}")


def run(cfg: DictConfig) -> dict[str, float]:
    from engine.pipeline import MLPipeline
    from engine.tasks.reporting import ReportContext, run_steps
    from engine.trading.backtest import BacktestSettings

    console = Console(stderr=True, soft_wrap=True)
    check_objective(cfg.task.get("objective"))
    if cfg.get("model") is None:
        raise ConfigError("model", "task=train needs a model; pick one, e.g. model=xgboost")
    settings = build(cfg.backtest, BacktestSettings, key="backtest") if cfg.get("backtest") is not None \
        else BacktestSettings()
    with job_run(cfg) as tracked:
        data = build_dataset(cfg, console)
        tracked.set_tags({"data_fingerprint": data.fingerprint, "data_source": data.source,
                          "model_type": str(cfg.model.type)})
        train, val, test = data.splits
        dev = slice(train.start, val.stop)
        params = OmegaConf.to_container(cfg.model.params, resolve=True)
        pipe = MLPipeline(str(cfg.model.type), params, trainer=trainer_settings(cfg), device=_device(cfg),
                          seed=int(cfg.seed), output_dim=data.n_classes, dvc_track=bool(cfg.task.dvc_track),
                          mlflow_run_id=tracked.run_id, mlflow_tracking_uri=tracked.tracking_uri)
        console.print(f"[bold]fit[/] {cfg.model.type} on {dev.stop - dev.start:,} samples "
                      f"(last {val.stop - val.start:,} validate)")
        start = time.perf_counter()
        fit_metrics = pipe.fit(data.take(dev), data.y[dev], val_split=(val.stop - val.start) / (dev.stop - dev.start),
                               embargo=val.start - train.stop, feature_names=data.feature_names)
        fit_seconds = time.perf_counter() - start
        console.print(f"[green]done[/] fit [dim]({fit_seconds:.1f}s)[/]")
        metrics: dict[str, float] = {"fit_seconds": fit_seconds}
        with phase(console, "evaluate (classification + next-bar backtest)"):
            val_m, _, _ = evaluate(pipe, data, val, "val", settings)
            test_m, test_proba, test_bt = evaluate(pipe, data, test, "test", settings)
        metrics |= val_m | test_m
        metrics |= {f"fit_{k}": float(v) for k, v in (fit_metrics or {}).items()
                    if isinstance(v, int | float) and not isinstance(v, bool)}
        metrics |= {f"clean_{k}": float(v) for k, v in data.clean_report.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)}
        metrics |= {"n_train": float(train.stop - train.start), "n_val": float(val.stop - val.start),
                    "n_test": float(test.stop - test.start), "n_features": float(len(data.feature_names))}
        tracked.log_metrics(metrics)
        if data.clean_report:
            tracked.log_dict(data.clean_report, "report/cleaning.json")
        tracked.log_dict({"features": data.feature_names, "horizon": data.horizon, "embargo": data.embargo,
                          "bar_seconds": data.bar_seconds,
                          "spans": {k: [str(data.index[s.start]), str(data.index[s.stop - 1])]
                                    for k, s in zip(("train", "val", "test"), data.splits, strict=True)}},
                         "report/dataset.json")
        samples = int(cfg.task.importance_samples)
        _report(cfg, tracked, console, ReportContext(
            run=tracked, pipeline=pipe, X_eval=data.take(test), y_eval=data.y[test], proba=test_proba,
            feature_names=data.feature_names, backtest=test_bt, span="test",
            max_samples=min(samples, SMOKE_REPORT_SAMPLES) if cfg.smoke else samples, seed=int(cfg.seed)), run_steps)
        if cfg.task.save_model:
            _save(cfg, pipe, tracked, console, data)
        _summary(console, metrics)
    return metrics


def _report(cfg: DictConfig, tracked: Run, console: Console, ctx: Any, run_steps: Any) -> None:
    if not tracked.active or not cfg.task.report:
        return
    with phase(console, f"report: {', '.join(cfg.task.report)}"):
        extra = run_steps(list(cfg.task.report), ctx)
    if extra:
        tracked.log_metrics(extra)


def _save(cfg: DictConfig, pipe: Any, tracked: Run, console: Console, data: Dataset) -> None:
    path = model_dir(cfg) / MODEL_FILE
    with phase(console, f"save model -> {path}"):
        pipe.metadata.update({"bar_size": cfg.task.bar_size or str(cfg.timeframe), "symbol": str(cfg.symbol),
                              "data_fingerprint": data.fingerprint})
        pipe.save(path)
        tracked.set_tags({"model_path": str(path)})
        if tracked.active and cfg.task.log_model:
            pipe.log_mlflow_model(tracked.run_id)


def _summary(console: Console, metrics: dict[str, float]) -> None:
    keys = ("val_f1", "val_sharpe", "test_accuracy", "test_f1", "test_roc_auc", "test_total_return", "test_sharpe",
            "test_max_drawdown", "test_hit_rate", "test_n_trades")
    console.print("  ".join(f"{k}={metrics[k]:.4g}" for k in keys if k in metrics))
