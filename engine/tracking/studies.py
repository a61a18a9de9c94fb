"""Optuna studies shared by a sweeper and the trial jobs it launches.

engine's Optuna sweeper (``hydra_plugins/engine_optuna_sweeper``) asks the study for trials and launches one
engine job per trial, on whatever launcher is configured (joblib processes, Ray workers). A job learns which
trial it is from its ``sweep`` config node (:class:`SweepTrial`), reopens that trial in the study's storage
and reports its validation loss each epoch, so the study's pruner can stop a hopeless trial early.

Storage is a URL (any SQLAlchemy database; PostgreSQL lets sweepers on several machines share one study, the
way Optuna documents parallel optimisation) or, without one, a journal file in the sweep directory (one
machine, many processes). Only Optuna's public API is used: storages, ``BaseStorage`` look-ups, ``Trial``.
optuna is imported on first use: the config layer imports this module at start-up for :class:`SweepTrial`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import OperationalError
from engine.tracking.sweep_run import SweepRun

log = logging.getLogger(__name__)

PARENT_RUN_ATTR = "mlflow_parent_run_id"  # study user attribute: the study's MLflow run


@dataclass(frozen=True)
class SweepTrial:
    """Which trial of which study a job is; set by the sweeper on each job it launches, never by hand."""

    study: str | None = None
    trial: int | None = None  # Optuna's trial number in the study (unique across every sweeper sharing it)
    parent_run_id: str | None = None  # the study's MLflow run: the job's run becomes its child
    journal: str | None = None  # the study's journal file when the sweeper was given no storage URL


def open_storage(url: str | None, journal: str | Path | None) -> Any:
    """The study storage: ``url`` (an RDB URL) when given, else the journal file ``journal``."""
    import optuna

    if url:
        return _rdb_storage(str(url))
    if journal:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    raise OperationalError("an Optuna study shared between processes needs a storage: set "
                           "hydra.sweeper.storage to a database URL, or leave it null for a journal file")


def _rdb_storage(url: str, attempts: int = 5) -> Any:
    """``RDBStorage(url)``; Optuna creates its tables on first use, and two sweepers starting together on an
    empty database race to do it: the loser's DDL fails, and a second try finds the tables made."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(1, attempts + 1):
        try:
            # pool_pre_ping: a long sweep outlives idle connections a database or a proxy closes
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except SQLAlchemyError as exc:
            if attempt == attempts:
                raise
            log.info("Optuna storage not ready (%s); trying again", type(exc).__name__)
            time.sleep(0.5 * attempt)
    raise AssertionError("unreachable")


def create_or_join(storage: Any, name: str, direction: str, sampler: Any, pruner: Any) -> tuple[Any, bool]:
    """``(study, created)``: this process created the study, or joined one another sweeper created first.

    Creation is atomic in the storage (a unique study name), so of sweepers starting together exactly one
    is the creator; it is the one that opens the study's MLflow run (:func:`wait_for_attr`)."""
    import optuna

    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction=direction)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if study.direction.name.lower() != direction.lower():
            raise OperationalError(f"study {name!r} exists with direction {study.direction.name.lower()}, "
                                   f"not {direction}; use another hydra.sweeper.study_name") from None
        return study, False


def wait_for_attr(study: Any, key: str, timeout: float) -> Any | None:
    """The study's user attribute ``key`` once another process has set it (None after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() >= deadline:
            return value
        time.sleep(0.5)


def reopen_trial(storage: Any, study_name: str, number: int, pruner: Any) -> Any:
    """Trial ``number`` of ``study_name``, as an ``optuna.Trial`` this process can report to."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
    study_id = storage.get_study_id_from_name(study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.trial.Trial(study, trial_id)


class StudyRun(SweepRun):
    """The study's MLflow run; every trial job's run is its child (tag ``mlflow.parentRunId``).

    One per study, whichever sweepers contribute: the sweeper that created the study creates the run and
    stores its id in the study (user attribute ``mlflow_parent_run_id``); a sweeper joining the study, or
    resuming it later, finds the id there and reuses the run."""

    @classmethod
    def open(cls, settings: Any, study: Any, *, created: bool, wait_s: float,
             params: dict[str, Any]) -> StudyRun:
        from mlflow.tracking import MlflowClient

        from engine.redact import redact_mapping

        # the job runs' own helper: the same experiment, created once however many processes race for it
        from engine.tracking.mlflow import experiment_id

        client = MlflowClient(tracking_uri=settings.uri)
        run_id = study.user_attrs.get(PARENT_RUN_ATTR)
        if run_id is None and not created and not study.get_trials(deepcopy=False):
            # a sweeper that created the study a moment ago is about to store its run's id (a study that
            # already has trials and no id was made without one: there is nothing to wait for)
            run_id = wait_for_attr(study, PARENT_RUN_ATTR, wait_s)
        if run_id is not None:
            client.update_run(run_id, status="RUNNING")
            return cls(client, run_id)
        run = client.create_run(experiment_id(client, settings), run_name=f"study {study.study_name}",
                                tags={"optuna_study": study.study_name, "optuna_role": "study",
                                      "sweep_role": "parent"})
        study.set_user_attr(PARENT_RUN_ATTR, run.info.run_id)
        for key, value in redact_mapping(params).items():
            client.log_param(run.info.run_id, key, str(value)[:6000])
        log.info("MLflow run %s is study %r's parent run", run.info.run_id, study.study_name)
        return cls(client, run.info.run_id)

    def children(self) -> dict[str, Any]:
        """The trials' runs by trial number (as text), whichever sweeper launched them."""
        experiment = self.client.get_run(self.run_id).info.experiment_id
        found = self.client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{self.run_id}'",
                                        max_results=5000)
        return {r.data.tags.get("optuna_trial"): r for r in found}

    def record(self, outcomes: dict[int, str]) -> None:
        """Tag each trial's run with its Optuna state; a pruned trial's run ends KILLED, not FAILED."""
        by_trial = {k: r.info.run_id for k, r in self.children().items()}
        for number, state in outcomes.items():
            run_id = by_trial.get(str(number))
            if run_id is None:
                continue  # a job that failed before it opened its run
            self.client.set_tag(run_id, "optuna_state", state)
            if state == "PRUNED":
                self.client.set_terminated(run_id, "KILLED")

    def finish(self, study: Any, status: str) -> None:
        """Log the study's state so far (best value and trial, counts) and end the run with ``status``."""
        import json

        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials)
                  for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        step = len(trials)
        for name, count in counts.items():
            self.client.log_metric(self.run_id, f"sweep/n_{name}", count, step=step)
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        if completed:
            best = study.best_trial
            self.client.log_metric(self.run_id, "sweep/best_value", float(best.value), step=step)
            # tags, not params: MLflow params are write-once, and the best trial changes as sweepers add trials
            self.client.set_tag(self.run_id, "best_trial", str(best.number))
            self.client.set_tag(self.run_id, "best_params", json.dumps(best.params, default=str))
        self.client.set_terminated(self.run_id, status)
