"""task=train: bars -> (resample) -> clean -> features -> labels -> fit -> evaluate -> log -> save.

Evaluation covers the validation and the test span: classification metrics of the predicted class
probabilities and trading metrics of a next-bar backtest of the signals they imply (``backtest`` group).
Every metric is returned, so ``task.objective`` can name any of them for a Hydra sweeper.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from engine.data.dataset import Dataset
from engine.errors import ConfigError
from engine.tasks.common import job_run, phase
from engine.tasks.console import job_console
from engine.tasks.dvc_wiring import check_dvc_track, data_version_tags, write_metrics
from engine.tasks.model_wiring import (
    build_dataset,
    callback_settings,
    checkpoint_note,
    dataset_builder,
    latest_model_path,
    resume_checkpoint,
    run_model_path,
)
from engine.tracking.mlflow import Run

SMOKE_REPORT_SAMPLES = 100  # rows for permutation importance in smoke mode (one prediction per feature)


def trainer_settings(cfg: DictConfig) -> Any:
    from engine.models.settings import TrainerSettings

    t = OmegaConf.to_container(cfg.trainer, resolve=True) if cfg.get("trainer") is not None else {}
    if cfg.smoke and "max_epochs" in t:
        t["max_epochs"] = min(int(t["max_epochs"]), int(cfg.task.smoke_max_epochs))
    return TrainerSettings(**t)


def _device(cfg: DictConfig) -> str:
    accel = str(cfg.trainer.accelerator) if cfg.get("trainer") is not None else "cpu"
    return {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda"}.get(accel, "auto")


def evaluate(pipe: Any, data: Dataset, span: slice, name: str, settings: Any) -> tuple[dict[str, float], Any, Any]:
    """Classification metrics and the next-bar backtest of one span; keys prefixed ``<name>_``."""
    from engine.metrics import classification_metrics
    from engine.tasks.backtest_wiring import trade_span

    proba = np.asarray(pipe.predict_proba(data.take(span)), dtype="float64")
    metrics = classification_metrics(data.y[span], proba)
    # task=backtest's own backtest (engine.tasks.backtest_wiring): each signal is decided at its sample's bar
    # close and filled at the next bar's open
    result = trade_span(settings, proba, data, span)
    metrics |= result.metrics
    return {f"{name}_{k}": float(v) for k, v in metrics.items()}, proba, result


def check_objective(name: str | None) -> None:
    """Refuse, before any work, an objective the task will never return (a sweep would fail on every trial)."""
    from engine.config.sweep_checks import objective_problem

    problem = objective_problem(name)  # the same rule preflight applies to a sweep before any job starts
    if problem:
        raise ConfigError("task.objective", problem)


def run(cfg: DictConfig) -> dict[str, float]:
    from engine.models.pipeline import MLPipeline
    from engine.tasks.backtest_wiring import span_backtest
    from engine.tasks.reporting import ReportContext, run_steps
    from engine.tasks.sweeps import pruning_callbacks
    from engine.tracking.model_hooks import install, run_hooks

    console = job_console()
    check_objective(cfg.task.get("objective"))
    if cfg.task.get("register_as") and not (cfg.task.save_model and cfg.task.log_model and cfg.tracking.enabled):
        raise ConfigError("task.register_as", "registers the MLflow model the run logs: needs task.save_model, "
                                              "task.log_model and tracking enabled")
    if cfg.get("model") is None:
        raise ConfigError("model", "task=train needs a model; pick one, e.g. model=xgboost")
    settings = span_backtest(cfg)  # the backtest and risk groups, checked before any work
    check_dvc_track(cfg)
    resume = resume_checkpoint(cfg)  # trainer.ckpt_path: a missing or mismatched file fails here
    with job_run(cfg) as tracked:
        data = build_dataset(cfg, console)
        tracked.set_tags({"data_fingerprint": data.fingerprint, "data_source": data.source,
                          "model_type": str(cfg.model.type), **data_version_tags(cfg)})
        train, val, test = data.splits
        tracked.log_dataset(f"{cfg.symbol} {data.timeframe.mt5}", data.fingerprint, data.source,
                            data.split_report()["spans"], data.feature_names)
        params = OmegaConf.to_container(cfg.model.params, resolve=True)
        install()  # the tracking layer's hooks: task.dvc_track versions the saved model through them
        pipe = MLPipeline(str(cfg.model.type), params, trainer=trainer_settings(cfg), device=_device(cfg),
                          seed=int(cfg.seed), output_dim=data.n_classes, dvc_track=bool(cfg.task.dvc_track),
                          hooks=run_hooks(tracked.run_id, tracked.tracking_uri),
                          callback_settings=callback_settings(cfg))
        console.print(f"[bold]fit[/] {cfg.model.type} on {train.stop - train.start:,} samples "
                      f"(validate on the next {val.stop - val.start:,} after {data.embargo} embargoed)")
        start = time.perf_counter()
        # the validation span is the dataset's own, so early stopping and val_* judge exactly those samples
        fit_metrics = pipe.fit(data.take(train), data.y[train], validation=(data.take(val), data.y[val]),
                               embargo=val.start - train.stop, feature_names=data.feature_names,
                               callbacks=pruning_callbacks(cfg, is_net=pipe.is_net), ckpt_path=resume)
        fit_seconds = time.perf_counter() - start
        console.print(f"[green]done[/] fit [dim]({fit_seconds:.1f}s)[/]")
        if note := checkpoint_note(pipe.callback_settings, resume):
            console.print(note)
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
        # cleaning counts that are all zero fill the UI with flat charts: they are in report/cleaning.json
        tracked.log_metrics({k: v for k, v in metrics.items() if not (k.startswith("clean_") and v == 0)})
        write_metrics(cfg, metrics)
        if data.clean_report:
            tracked.log_dict(data.clean_report, "report/cleaning.json")
        tracked.log_dict({"features": data.feature_names, **data.split_report()}, "report/dataset.json")
        samples = int(cfg.task.importance_samples)
        _report(cfg, tracked, console, ReportContext(
            run=tracked, pipeline=pipe, X_eval=data.take(test), y_eval=data.y[test], proba=test_proba,
            feature_names=data.feature_names, backtest=test_bt, span="test",
            max_samples=min(samples, SMOKE_REPORT_SAMPLES) if cfg.smoke else samples, seed=int(cfg.seed),
            bar_seconds=data.bar_seconds), run_steps)
        if cfg.task.save_model:
            _save(cfg, pipe, tracked, console, data)
        _summary(console, metrics, data.bar_seconds)
    return metrics


def _report(cfg: DictConfig, tracked: Run, console: Console, ctx: Any, run_steps: Any) -> None:
    if not tracked.records or not cfg.task.report:
        return
    with phase(console, f"report: {', '.join(cfg.task.report)}"):
        extra = run_steps(list(cfg.task.report), ctx)
    if extra:
        tracked.log_metrics(extra)


def _save(cfg: DictConfig, pipe: Any, tracked: Run, console: Console, data: Dataset) -> None:
    # the run's own file, never overwritten (the model_path tag names it); a single run then publishes it
    path, latest = run_model_path(cfg, tracked.run_id), latest_model_path(cfg)
    with phase(console, f"save model -> {path}"):
        # the recipe lets task=live rebuild the very features the model was trained on
        pipe.metadata.update({"bar_size": cfg.task.bar_size or str(cfg.timeframe), "symbol": str(cfg.symbol),
                              "data_fingerprint": data.fingerprint, "recipe": dataset_builder(cfg).recipe()})
        # the hooks (task.dvc_track: dvc add) version the published file, or the trial's own in a multirun
        if latest is None:
            pipe.save(path)
        else:
            pipe.save_copy(path)
        tracked.set_tags({"model_path": str(path)})
        if tracked.active and cfg.task.log_model:
            from engine.tracking.model_hooks import log_pipeline_model

            # named after the model (task.model_name), not MLflow's default "model", so the UI tells them apart
            uri = log_pipeline_model(pipe, tracked.run_id, tracked.tracking_uri, name=str(cfg.task.model_name))
            tracked.set_tags({"logged_model": uri})
            # a sweep's trials are candidates: the sweep's end registers the best one (engine.tasks.sweep_summary)
            if cfg.task.get("register_as") and latest is not None:
                from engine.tracking.registry import register

                registered = register(uri, str(cfg.task.register_as), alias=cfg.task.get("register_alias"),
                                      tracking_uri=tracked.tracking_uri)
                tracked.set_tags({"registered_model": registered.uri, "registered_version": registered.version})
                console.print(f"registered {registered.name} version {registered.version} ({registered.uri})")
    if latest is not None:
        # published last, once everything above succeeded; the artifact writer replaces the file atomically
        with phase(console, f"publish latest -> {latest}"):
            pipe.save(latest)
            tracked.set_tags({"latest_model_path": str(latest)})


def _summary(console: Console, metrics: dict[str, float], bar_seconds: float) -> None:
    from engine.tasks.console import print_metrics
    from engine.tasks.reporting import sharpe_note

    keys = ("val_f1", "val_sharpe", "test_accuracy", "test_f1", "test_roc_auc", "test_total_return", "test_sharpe",
            "test_max_drawdown", "test_hit_rate", "test_n_trades")
    print_metrics(console, metrics, keys, sharpe_note(bar_seconds))
