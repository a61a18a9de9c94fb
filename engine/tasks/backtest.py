"""task=backtest: a saved model (or models retrained walk-forward) traded over any span of any source.

    python -m engine +experiment=xgb_1m task=backtest task.model=models/xgb_1m/pipeline.zip \\
        source.start=2024-03-01 source.end=2024-04-01
    python -m engine +experiment=xgb_1m task=backtest task.model=models:/xgb_1m@champion
    python -m engine +experiment=xgb_1m task=backtest task.walk_forward.enabled=true

The dataset is built by the same builder as training (compose the experiment that trained the model); the
model's saved feature list must equal the rebuilt one and its bar size the dataset's. The data's
fingerprint is a tag of the run next to the one the model was trained on. Walk-forward trains a model of
the ``model`` group on each window (engine.trading.walkforward), logs each fold's figures at step =
fold number, and trades the stitched out-of-sample predictions as one series. The report goes to the
Hydra run folder (``<run dir>/backtest/``) and, when tracking is on, to the run's ``backtest/`` artifacts.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from engine import timeframes
from engine.data.dataset import Dataset
from engine.errors import ConfigError
from engine.metrics import classification_metrics
from engine.tasks.backtest_wiring import SpanBacktest, device, span_backtest, trainer_settings
from engine.tasks.common import job_run, phase
from engine.tasks.dvc_wiring import write_equity, write_metrics
from engine.tasks.model_wiring import MODEL_FILE, build_dataset, dataset_builder
from engine.tracking.mlflow import Run
from engine.trading.walkforward import WalkForwardSettings, walk_forward_folds

SUMMARY = ("total_return", "buy_hold_total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
           "hit_rate", "profit_factor", "n_trades", "exposure", "costs_paid", "accuracy")


def run(cfg: DictConfig) -> dict[str, float]:
    console = Console(stderr=True, soft_wrap=True)
    tester = span_backtest(cfg)  # a bad backtest or risk setting fails here, before any data is read
    walk = WalkForwardSettings(**OmegaConf.to_container(cfg.task.walk_forward, resolve=True))  # type: ignore[arg-type]
    reference = _check_request(cfg, walk)
    with job_run(cfg) as tracked:
        if walk.enabled:
            data, proba, span = _walk_forward(cfg, walk, tester, tracked, console)
            described = f"walk-forward {cfg.model.type}"
        else:
            pipe, described = _load_model(cfg, reference, tracked, console)
            data = _dataset(cfg, console, seq_len=pipe.seq_len_)
            _check_model_fits(pipe, data)
            span = data.splits.test if cfg.task.span == "test" else slice(0, len(data.y))
            with phase(console, f"predict {span.stop - span.start:,} samples"):
                proba = np.asarray(pipe.predict_proba(data.take(span)), dtype="float64")
            tracked.set_tags({"model_type": pipe.model_type,
                              "model_data_fingerprint": str(pipe.metadata.get("data_fingerprint", ""))})
        with phase(console, f"backtest ({tester.settings.sizing} sizing, {span.stop - span.start:,} bars)"):
            result = tester.run(proba, data, span)
        metrics = {k: float(v) for k, v in classification_metrics(data.y[span], proba).items()} | result.metrics
        first, last = data.index[span.start], data.index[span.stop - 1]
        tracked.set_tags({"data_fingerprint": data.fingerprint, "data_source": data.source, "model": described,
                          "backtest_span": f"{first} .. {last}"})
        tracked.log_metrics(metrics)
        write_metrics(cfg, metrics)  # task.metrics_path / task.equity_path: the dvc.yaml evaluate stage's files
        write_equity(cfg, pd.DataFrame({"equity": result.equity, "buy_and_hold": result.buy_and_hold}))
        tracked.log_dict({"features": data.feature_names, **data.split_report(),
                          "backtest_samples": [span.start, span.stop]}, "report/dataset.json")
        if cfg.task.report:
            facts = {"model": described, "data": data.source, "data fingerprint": data.fingerprint,
                     "span": f"{first} .. {last} ({span.stop - span.start:,} bars of {data.timeframe.mt5})",
                     "settings": OmegaConf.to_container(cfg.backtest, resolve=True) if cfg.get("backtest") else {},
                     "risk": dataclasses.asdict(tester.limits)}
            _report(cfg, tracked, console, result, facts)
        _summary(console, metrics)
    return metrics


def _check_request(cfg: DictConfig, walk: WalkForwardSettings) -> str | None:
    """The model reference to load (None in walk-forward); refuses a contradictory request before work."""
    if walk.enabled:
        if cfg.task.model:
            raise ConfigError("task.model", "walk-forward trains its own models from the model group; drop "
                                            "task.model or set task.walk_forward.enabled=false")
        if cfg.task.span != "all":
            raise ConfigError("task.span", "walk-forward trades every sample after the first training window; "
                                           "leave task.span=all")
        if cfg.get("model") is None:
            raise ConfigError("model", "walk-forward needs a model group to train, e.g. model=xgboost")
        return None
    if cfg.task.model:
        reference = str(cfg.task.model)
    else:
        reference = str(Path(str(cfg.paths.models)) / str(cfg.task.model_name) / MODEL_FILE)
    from engine.tracking.model_uri import is_model_uri

    if not is_model_uri(reference) and not Path(reference).is_file():
        raise ConfigError("task.model", f"no saved model at {reference}; train one first (task=train with the same "
                                        "experiment) or point task.model at a pipeline.zip or an MLflow model URI")
    return reference


def _load_model(cfg: DictConfig, reference: str | None, tracked: Run, console: Console) -> tuple[Any, str]:
    from engine.models.pipeline import MLPipeline
    from engine.tracking.model_uri import fetch_pipeline, is_model_uri

    assert reference is not None
    with phase(console, f"load model {reference}"):
        if is_model_uri(reference):
            with tempfile.TemporaryDirectory(prefix="engine-model-") as tmp:
                pipe = MLPipeline.load(fetch_pipeline(reference, str(cfg.tracking.uri), Path(tmp)))
        else:
            pipe = MLPipeline.load(reference)
    tracked.set_tags({"model_path": reference})
    return pipe, reference


def _dataset(cfg: DictConfig, console: Console, *, seq_len: int | None) -> Dataset:
    builder = dataset_builder(cfg)
    if builder.settings.seq_len != seq_len:  # the window is the model's, whatever the model group says
        builder = dataclasses.replace(builder, settings=dataclasses.replace(builder.settings, seq_len=seq_len))
    return build_dataset(cfg, console, builder)  # task.features_from: the stored bars + features


def _check_model_fits(pipe: Any, data: Dataset) -> None:
    """The model must see the inputs it was trained on: same features in the same order, same bar size."""
    trained = list(pipe.feature_names_)
    if trained != list(data.feature_names):
        missing = [f for f in trained if f not in data.feature_names]
        extra = [f for f in data.feature_names if f not in trained]
        detail = f"missing {missing[:5]}, not in the model {extra[:5]}" if missing or extra else "a different order"
        raise ConfigError("features", f"the model was trained on {len(trained)} features, this dataset has "
                                      f"{len(data.feature_names)} ({detail}); compose the experiment that trained "
                                      "it (+experiment=NAME) so features, labels and bar size match")
    saved = pipe.metadata.get("bar_size")
    if saved and timeframes.parse(str(saved), key="task.bar_size") != data.timeframe:
        raise ConfigError("task.bar_size", f"the model was trained on {saved} bars, this dataset is made of "
                                           f"{data.timeframe.mt5} bars")


def _walk_forward(cfg: DictConfig, walk: WalkForwardSettings, tester: SpanBacktest, tracked: Run,
                  console: Console) -> tuple[Dataset, np.ndarray, slice]:
    """Train on each window, predict the span after its embargo, and stitch the predictions."""
    from engine.models import SEQUENCE_TYPES
    from engine.models.pipeline import MLPipeline

    seq_len = int(cfg.model.seq_len) if cfg.model.type in SEQUENCE_TYPES else None
    data = _dataset(cfg, console, seq_len=seq_len)
    n = len(data.y)
    if cfg.smoke and n <= walk.train_bars + data.embargo:
        # smoke keeps the last 20,000 bars: shrink the windows to two or three folds instead of failing
        walk = dataclasses.replace(walk, train_bars=max(50, n // 2),
                                   retrain_every=max(1, (n - n // 2 - data.embargo) // 2))
        console.print(f"smoke: train_bars={walk.train_bars}, retrain_every={walk.retrain_every}")
    folds = walk_forward_folds(n, walk, data.embargo)
    params = OmegaConf.to_container(cfg.model.params, resolve=True)
    trainer = trainer_settings(cfg, int(cfg.task.smoke_max_epochs))
    parts, record = [], []
    for fold in folds:
        pipe = MLPipeline(str(cfg.model.type), params, trainer=trainer, device=device(cfg), seed=int(cfg.seed),
                          output_dim=data.n_classes)
        sizes = f"train {fold.train.stop - fold.train.start:,}, trade {fold.test.stop - fold.test.start:,}"
        with phase(console, f"fold {fold.number + 1}/{len(folds)}: {sizes}"):
            start = time.perf_counter()
            pipe.fit(data.take(fold.train), data.y[fold.train], val_split=float(cfg.task.val_frac),
                     embargo=data.embargo, feature_names=data.feature_names)
            proba = np.asarray(pipe.predict_proba(data.take(fold.test)), dtype="float64")
        fold_metrics = classification_metrics(data.y[fold.test], proba) | tester.run(proba, data, fold.test).metrics
        fold_metrics["fit_seconds"] = time.perf_counter() - start
        tracked.log_metrics({f"fold_{k}": float(v) for k, v in fold_metrics.items()}, step=fold.number)
        parts.append(proba)
        record.append({"fold": fold.number, "train": [fold.train.start, fold.train.stop],
                       "test": [fold.test.start, fold.test.stop], "embargo": data.embargo,
                       "train_times": [str(data.index[fold.train.start]), str(data.index[fold.train.stop - 1])],
                       "test_times": [str(data.index[fold.test.start]), str(data.index[fold.test.stop - 1])]})
    tracked.log_dict({"window": walk.window, "train_bars": walk.train_bars, "retrain_every": walk.retrain_every,
                      "folds": record}, "report/walk_forward.json")
    tracked.set_tags({"model_type": str(cfg.model.type), "walk_forward_folds": len(folds)})
    return data, np.concatenate(parts), slice(folds[0].test.start, len(data.y))


def run_folder(cfg: DictConfig) -> Path:
    """``<Hydra run dir>/backtest``; outside a Hydra app, ``${paths.root}/outputs/backtest-<time>``."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf.errors import MissingMandatoryValue

    try:
        return Path(HydraConfig.get().runtime.output_dir) / "backtest"
    except (ValueError, MissingMandatoryValue):
        return Path(str(cfg.paths.root)) / "outputs" / f"backtest-{time.strftime('%Y%m%d-%H%M%S')}"


def _report(cfg: DictConfig, tracked: Run, console: Console, result: Any, facts: dict[str, Any]) -> None:
    from engine.tasks.backtest_report import write_report

    folder = run_folder(cfg)
    with phase(console, f"report -> {folder}"):
        files = write_report(result, folder, title=f"backtest: {facts['model']}", facts=facts)
        for path in files:
            tracked.log_artifact(path, "backtest")
    console.print(f"report: {folder / 'report.html'}")


def _summary(console: Console, metrics: dict[str, float]) -> None:
    console.print("  ".join(f"{k}={metrics[k]:.4g}" for k in SUMMARY if k in metrics))
