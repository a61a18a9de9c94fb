"""task=explain: SHAP attributions of a saved model on the test span of its dataset, logged to MLflow.

Compose it with the experiment that trained the model so the same bars, features and splits are
rebuilt: ``python -m engine +experiment=lstm_5m task=explain``. Loading refuses a model whose feature
list differs from the rebuilt one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from engine.errors import ConfigError
from engine.tasks.common import job_run, phase
from engine.tasks.console import job_console
from engine.tasks.model_wiring import MODEL_FILE, build_dataset


def run(cfg: DictConfig) -> dict[str, float]:
    from engine.models.pipeline import MLPipeline
    from engine.tasks.reporting import ReportContext, shap_summary

    console = job_console()
    path = Path(str(cfg.task.model_path)) if cfg.task.model_path else Path(str(cfg.paths.models)) / str(
        cfg.task.model_name) / MODEL_FILE
    if not path.exists():
        raise ConfigError("task.model_path", f"no saved model at {path}; train one first (task=train with the same "
                                             "experiment) or point task.model_path at a saved pipeline.zip")
    with job_run(cfg) as tracked:
        with phase(console, f"load model {path}"):
            pipe = MLPipeline.load(path)
        data = build_dataset(cfg, console)
        tracked.set_tags({"data_fingerprint": data.fingerprint, "data_source": data.source,
                          "model_path": str(path), "model_type": str(pipe.model_type)})
        test = data.splits[2]
        X_test = data.take(test)
        with phase(console, f"explain ({cfg.task.method}, up to {cfg.task.max_samples} samples)"):
            proba = np.asarray(pipe.predict_proba(X_test))
            ctx = ReportContext(run=tracked, pipeline=pipe, X_eval=X_test, y_eval=data.y[test], proba=proba,
                                feature_names=data.feature_names, span="test",
                                max_samples=int(cfg.task.max_samples), top_k=int(cfg.task.top_k), seed=int(cfg.seed))
            shap_summary(ctx)
        _show(console, pipe, int(cfg.task.top_k), tracked)
        metrics = {"n_explained": float(min(len(data.y[test]), int(cfg.task.max_samples))),
                   "n_features": float(len(data.feature_names))}
        tracked.log_metrics(metrics)
    return metrics


def _show(console: Console, pipe: Any, top_k: int, tracked: Any) -> None:
    """The top features by mean |SHAP| on the terminal (and in the run folder's log), and where the plot is."""
    from engine.models.explain import importance_frame

    frame = importance_frame(pipe.shap_values_, pipe.feature_names_).head(top_k)
    table = Table(title=f"mean |SHAP| per feature, top {len(frame)}", title_justify="left")
    table.add_column("feature")
    table.add_column("mean |SHAP|", justify="right")
    for name, value in frame["mean_abs_shap"].items():
        table.add_row(str(name), f"{value:.4g}")
    console.print(table)
    if tracked.local is not None:
        console.print(f"plot and table: {tracked.local.root / 'plots'} and {tracked.local.root / 'report'}")
