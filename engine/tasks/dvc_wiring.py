"""What task=train does for DVC; not a task itself.

- :func:`check_dvc_track`: ``task.dvc_track=true`` is checked before any work, so a run that could not
  version its model fails in a second with what to fix, not after the training.
- :func:`data_version_tags`: the DVC version (md5) of the data the run read, for its MLflow tags (the git
  commit of the code is tagged by every job).
- :func:`write_metrics`: the returned metrics as JSON for ``dvc metrics`` / ``dvc exp show``; and
  :func:`write_equity`: an equity curve as CSV for ``dvc plots`` (task=backtest, the evaluate stage).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from engine.errors import DVCUnavailableError
from engine.tasks.model_wiring import MODEL_FILE, model_dir
from engine.tasks.stage_data import under_root
from engine.tracking.dvc import check_trackable
from engine.tracking.dvc_data import data_version


def check_dvc_track(cfg: DictConfig) -> None:
    """Raise (one line: what to fix) when the model this run saves could not be ``dvc add``-ed."""
    if cfg.task.get("dvc_track") and cfg.task.get("save_model", True):
        check_trackable(model_dir(cfg) / MODEL_FILE)


def read_path(cfg: DictConfig) -> Path | None:
    """Where the run's data comes from: the stored features, else the source's file or store folder."""
    root = str(cfg.paths.root)
    if cfg.task.get("features_from"):
        return under_root(root, str(cfg.task.features_from))
    for key in ("source.path", "source.store.root"):
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value:
            return under_root(root, str(value))
    return None  # a database or a terminal: no file DVC could version


def data_version_tags(cfg: DictConfig) -> dict[str, str]:
    """``dvc_data_md5`` and friends for the data the run reads; only ``dvc_data_path`` when DVC does not
    track it (e.g. the bundled sample, which is in git: the commit tag versions it)."""
    path = read_path(cfg)
    if path is None:
        return {}
    try:
        version = data_version(path)
    except DVCUnavailableError:  # no DVC repository above the data
        version = None
    return version.tags() if version is not None else {"dvc_data_path": f"{path} (not tracked by DVC)"}


def write_metrics(cfg: DictConfig, metrics: dict[str, float]) -> Path | None:
    """``metrics`` as JSON at ``task.metrics_path`` (relative: under paths.root); a value that is not a
    finite number is written as null, which JSON readers (DVC's among them) accept."""
    target = cfg.task.get("metrics_path")
    if not target:
        return None
    path = under_root(str(cfg.paths.root), str(target))
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in sorted(metrics.items())}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_equity(cfg: DictConfig, curves: pd.DataFrame) -> Path | None:
    """``curves`` (equity columns on a time index) as CSV at ``task.equity_path`` (relative: under paths.root),
    with a ``time`` column first: what the ``plots`` entry of dvc.yaml's evaluate stage plots."""
    target = cfg.task.get("equity_path")
    if not target:
        return None
    path = under_root(str(cfg.paths.root), str(target))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    curves.rename_axis("time").reset_index().to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path
