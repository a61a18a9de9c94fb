"""What sweeps need around the jobs: Hydra's multirun callback, and the engine side of engine's Optuna sweeper.

- :class:`PrepareTrackingStore` (``hydra.callbacks`` in conf/config.yaml): the MLflow store exists before
  parallel jobs start.
- The sweep's side (called by ``hydra_plugins/engine_optuna_sweeper``): the study's MLflow parent run and
  the ``sweep.*`` overrides that tell each launched job which trial it is.
- The trial job's side (called by the train task): tags that make its run a child of the study's run, and
  the pruning callback fed by the validation loss.
Not a task: no ``run(cfg)``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("engine")


class PrepareTrackingStore(Callback):
    """Create the MLflow store once in the sweep's parent process before parallel jobs start.

    Two trials launched at the same moment on a fresh SQLite store would both try to create its tables
    and one would fail ("table ... already exists"); after this runs, jobs only add rows.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # The sweep's parent has no job yet; paths may interpolate ${hydra:runtime.cwd}.
        HydraConfig.instance().set_config(config)
        if not config.tracking.enabled:
            return
        uri = str(config.tracking.uri)
        if not uri.startswith("sqlite:///"):
            return  # a tracking server creates its schema once, itself
        from mlflow.tracking import MlflowClient

        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        # the URI itself is not logged: a server URI may carry credentials
        log.info("MLflow store ready for the sweep")


# -- engine's Optuna sweeper (hydra_plugins/engine_optuna_sweeper): the sweep's side ----------------------
def open_study_run(config: DictConfig, study: Any, *, created: bool, wait_s: float,
                   space: dict[str, str]) -> Any | None:
    """The study's MLflow parent run in the job's experiment (None with ``tracking.enabled=false``)."""
    from engine.tracking.mlflow import TrackingSettings
    from engine.tracking.studies import StudyRun

    if not config.tracking.enabled:
        return None
    settings = TrackingSettings(enabled=True, uri=str(config.tracking.uri), experiment=str(config.tracking.experiment),
                                artifact_root=config.tracking.artifact_root)
    sweeper = config.hydra.sweeper
    params = {"direction": sweeper.direction, "n_jobs": sweeper.n_jobs,
              "sampler": _target_name(sweeper.get("sampler")), "pruner": _target_name(sweeper.get("pruner")),
              **{f"space.{k}": v for k, v in space.items()}}
    return StudyRun.open(settings, study, created=created, wait_s=wait_s, params=params)


def _target_name(node: Any) -> str:
    return str(node.get("_target_", "?")).rsplit(".", 1)[-1] if node is not None else "none"


def trial_overrides(study: str, number: int, parent_run_id: str | None, journal: Path | None) -> list[str]:
    """The ``sweep.*`` overrides that tell a launched job which trial it is (see engine.tracking.studies)."""
    out = [f"sweep.study={_quoted(study)}", f"sweep.trial={number}"]
    if parent_run_id:
        out.append(f"sweep.parent_run_id={_quoted(parent_run_id)}")
    if journal is not None:
        out.append(f"sweep.journal={_quoted(str(journal))}")
    return out


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


# -- the trial job's side ----------------------------------------------------------------------------------
def trial_tags(cfg: DictConfig) -> dict[str, str]:
    """Tags that make a trial's MLflow run a child of its study's run (none outside a sweep)."""
    trial = cfg.get("sweep")
    if trial is None or trial.trial is None:
        return {}
    tags = {"optuna_study": str(trial.study), "optuna_trial": str(trial.trial)}
    if trial.parent_run_id:
        tags["mlflow.parentRunId"] = str(trial.parent_run_id)
    return tags


def pruning_callbacks(cfg: DictConfig, *, is_net: bool) -> list[Any] | None:
    """The Lightning callback reporting each epoch's val_loss to this job's trial, when the job is a trial of
    a sweep with a pruner and trains a net in one process (None otherwise)."""
    trial = cfg.get("sweep")
    if not is_net or trial is None or trial.trial is None:
        return None
    try:
        sweeper = HydraConfig.get().sweeper
    except ValueError:  # not inside a Hydra app
        return None
    if sweeper.get("pruner") is None:
        return None
    devices = cfg.trainer.get("devices") if cfg.get("trainer") is not None else 1
    if str(devices) not in ("1", "None"):
        # under DDP only rank 0 could report, and a prune decision would have to reach every rank
        log.warning("pruning is off for trial %s: it needs a single-process trainer (trainer.devices=1)",
                    trial.trial)
        return None
    from hydra.utils import instantiate

    from engine.tracking.pruning import OptunaPruning
    from engine.tracking.studies import open_storage, reopen_trial

    storage = open_storage(sweeper.get("storage"), trial.journal)
    return [OptunaPruning(reopen_trial(storage, str(trial.study), int(trial.trial), instantiate(sweeper.pruner)))]
