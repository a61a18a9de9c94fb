"""What sweeps need around the jobs: Hydra's multirun callback, and the engine side of engine's Optuna sweeper.

- :class:`PrepareTrackingStore` (``hydra.callbacks`` in conf/config.yaml): the MLflow store exists before
  parallel jobs start.
- :class:`SummarizeSweep` (``hydra.callbacks``): a basic (grid) sweep of task=train gets a parent MLflow run
  whose children are its jobs' runs, and ends with the summary table (:mod:`engine.tasks.sweep_summary`)
  and, with ``task.register_as``, the best trial's model registered.
- The sweep's side (called by ``hydra_plugins/engine_optuna_sweeper``): the study's MLflow parent run and
  the ``sweep.*`` overrides that tell each launched job which trial it is.
- The trial job's side (called by the train task): tags that make its run a child of the study's run, and
  the pruning callback fed by the validation loss.
Not a task: no ``run(cfg)``.
"""

from __future__ import annotations

import atexit
import json
import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

log = logging.getLogger("engine")
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
PARENT_FILE = "sweep_run.json"  # in the sweep dir: the basic sweep's parent run, read by each job


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


class SummarizeSweep(Callback):
    """A basic sweep of task=train: a parent MLflow run at the start, the summary table at the end.

    Jobs learn the parent from ``<sweep dir>/sweep_run.json`` (a launcher may run them in other processes);
    at the end every job run found in the job folders is made a child as well, in case a job could not read
    the file (a Ray worker on another machine). A sweep stopped by a failed job still ends with the table of
    what finished and its parent run FAILED (at exit: Hydra calls no callback after a failed job)."""

    def __init__(self) -> None:
        self._state: dict[str, Any] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        HydraConfig.instance().set_config(config)
        if str(config.hydra.sweeper.get("_target_")) != BASIC_SWEEPER or config.task.name != "train":
            return  # engine's Optuna sweeper summarises its study itself
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        task = config.task
        self._state = {"sweep_dir": sweep_dir, "objective": task.get("objective"), "parent": None,
                       "register_as": task.get("register_as"), "alias": task.get("register_alias"),
                       "uri": str(config.tracking.uri) if config.tracking.enabled else None}
        if config.tracking.enabled:
            from engine.tracking.mlflow import TrackingSettings
            from engine.tracking.sweep_run import SweepRun

            settings = TrackingSettings(enabled=True, uri=str(config.tracking.uri),
                                        experiment=str(config.tracking.experiment),
                                        artifact_root=config.tracking.artifact_root)
            from engine.redact import mask_override

            overrides = " ".join(mask_override(str(o)) for o in config.hydra.overrides.task)
            parent = SweepRun.create(settings, f"sweep {sweep_dir.name}",
                                     tags={"sweep_role": "parent", "sweep_dir": str(sweep_dir), "task": "train"},
                                     params={"sweep.overrides": overrides, "sweep.objective": task.get("objective")})
            sweep_dir.mkdir(parents=True, exist_ok=True)
            (sweep_dir / PARENT_FILE).write_text(json.dumps({"run_id": parent.run_id}) + "\n", encoding="utf-8")
            self._state["parent"] = parent
            log.info("MLflow run %s is the sweep's parent run", parent.run_id)
        atexit.register(self._end, "FAILED", at_exit=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end("FINISHED")

    def _end(self, status: str, *, at_exit: bool = False) -> None:
        state, self._state = self._state, None
        if state is None:
            return  # not a sweep this callback summarises, or summarised already
        from engine.tasks.sweep_summary import basic_summary, conclude

        parent, summarised = state["parent"], False
        try:
            summary = basic_summary(state["sweep_dir"], state["objective"])
            conclude(summary, state["sweep_dir"], parent, register_as=state["register_as"] if status == "FINISHED"
                     else None, alias=state["alias"], tracking_uri=state["uri"])
            summarised = True
        except Exception as exc:
            status = "FAILED"
            from engine.redact import redact_text

            log.error("sweep summary failed: %s: %s", type(exc).__name__, redact_text(str(exc)))
        finally:
            if parent is not None:
                parent.close(status)
        if not summarised and not at_exit:
            # Hydra turns a callback's exception into a warning and exits 0; SystemExit is not an Exception and
            # passes through, so a script chaining the sweep and its registration sees the failure (at exit, after a
            # failed job, that job's exit status already says so)
            raise SystemExit(1)


def sweep_parent(sweep_dir: str | Path) -> str | None:
    """The parent run id a basic sweep's callback left in ``sweep_dir`` (None when there is none)."""
    try:
        body = json.loads((Path(sweep_dir) / PARENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    run_id = body.get("run_id") if isinstance(body, dict) else None
    return str(run_id) if run_id else None


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


def summarize_study(config: DictConfig, study: Any, sweep_dir: Path, parent: Any | None, *,
                    finished: bool) -> Any | None:
    """The summary table of the whole study (every sweeper's trials): the study's values and states, each
    trial's run and model from its job folder in ``sweep_dir`` or, for another sweeper's trial, from its MLflow
    run; with ``task.register_as`` and a finished sweep, the best trial's model registered. Returns the best
    trial's row (:class:`engine.tasks.sweep_summary.Trial`) or None."""
    from engine.tasks.sweep_summary import Summary, Trial, conclude, jobs_by_trial, read_jobs, trial_from_job

    objective = config.task.get("objective")
    jobs = jobs_by_trial(read_jobs(sweep_dir))
    runs = parent.children() if parent is not None else {}
    trials = []
    for t in study.get_trials(deepcopy=False):
        told = tuple(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        job = jobs.get(t.number)
        if job is not None:
            trials.append(trial_from_job(job, objective, number=t.number, value=t.value, status=t.state.name,
                                         overrides=told))
            continue
        run = runs.get(str(t.number))
        tags = run.data.tags if run is not None else {}
        trials.append(Trial(t.number, told, t.value, t.state.name, run.info.run_id if run is not None else None,
                            tags.get("model_path"), tags.get("logged_model")))
    summary = Summary(objective, study.direction.name == "MAXIMIZE", trials)
    return conclude(summary, sweep_dir, parent, register_as=config.task.get("register_as") if finished else None,
                    alias=config.task.get("register_alias"),
                    tracking_uri=str(config.tracking.uri) if config.tracking.enabled else None)


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
    """Tags that make a trial's MLflow run a child of its sweep's run (none outside a sweep)."""
    trial = cfg.get("sweep")
    if trial is None or trial.trial is None:
        return _basic_parent_tags()
    tags = {"optuna_study": str(trial.study), "optuna_trial": str(trial.trial)}
    if trial.parent_run_id:
        tags["mlflow.parentRunId"] = str(trial.parent_run_id)
    return tags


def _basic_parent_tags() -> dict[str, str]:
    try:
        hc = HydraConfig.get()
        if str(hc.mode) != "RunMode.MULTIRUN":
            return {}
        parent = sweep_parent(str(hc.sweep.dir))
    except (ValueError, MissingMandatoryValue):
        return {}
    return {"mlflow.parentRunId": parent} if parent else {}


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
