"""The sweep loop: batches of asked trials through the launcher, outcomes told back to the study.

A job that raised ``optuna.TrialPruned`` (its pruner stopped it) is told PRUNED; any other failure FAIL, and
the sweep stops once a batch's failure share exceeds ``max_failure_rate`` (0: the first failure, as the
official sweeper does), re-raising the job's own error. The sweep ends with the summary table of the study
(:func:`engine.tasks.sweeps.summarize_study`: printed, in the sweep dir, logged to the study's MLflow run, the
best trial's model registered with ``task.register_as``); the best trial is also written to
``<sweep dir>/optimization_results.yaml`` (the official sweeper's file, now with its run id).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState

from engine.tasks.sweeps import open_study_run, summarize_study, trial_overrides
from engine.tracking.studies import create_or_join, open_storage
from hydra_plugins.engine_optuna_sweeper._space import as_override, search_space

log = logging.getLogger(__name__)


def run_sweep(sweeper: Any, arguments: list[str]) -> None:
    config = sweeper.config
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    journal = None if sweeper.storage else sweep_dir / "optuna.journal"
    storage = open_storage(sweeper.storage, journal)
    study, created = create_or_join(storage, sweeper.study_name, sweeper.direction, sweeper.sampler, sweeper.pruner)
    space, fixed = search_space(sweeper.params, arguments)
    log.info("Optuna study %r (%s, %s storage): %d trials, %d at a time, searching %s", study.study_name,
             "created" if created else "joined", "database" if sweeper.storage else "journal file",
             sweeper.n_trials, sweeper.n_jobs, ", ".join(space) or "nothing")
    parent = open_study_run(config, study, created=created, wait_s=sweeper.parent_run_wait_s,
                            space={k: repr(v) for k, v in space.items()})
    status, best = "FAILED", None
    try:
        _loop(sweeper, study, space, fixed, parent, journal)
        status = "FINISHED"
    finally:
        try:
            best = _summarize(config, study, sweep_dir, parent, status)
        finally:
            if parent is not None:
                parent.finish(study, status)
    _write_results(study, sweep_dir, best)


def _summarize(config: Any, study: optuna.Study, sweep_dir: Path, parent: Any, status: str) -> Any:
    """The summary table; after a failed batch, what the study has, without hiding the failure itself."""
    try:
        return summarize_study(config, study, sweep_dir, parent, finished=status == "FINISHED")
    except Exception:
        if status == "FINISHED":
            raise
        log.exception("could not summarise the failed sweep")
        return None


def _loop(sweeper: Any, study: optuna.Study, space: dict[str, Any], fixed: list[str], parent: Any,
          journal: Path | None) -> None:
    parent_run_id = parent.run_id if parent is not None else None
    job_idx, to_go = 0, sweeper.n_trials
    while to_go > 0:
        batch = min(to_go, sweeper.n_jobs)
        trials = [study.ask(space) for _ in range(batch)]
        overrides = [(*fixed, *(as_override(k, v) for k, v in trial.params.items()),
                      *trial_overrides(study.study_name, trial.number, parent_run_id, journal))
                     for trial in trials]
        returns = sweeper.launcher.launch(overrides, initial_job_idx=job_idx)
        job_idx += len(returns)
        failed = []
        outcomes: dict[int, str] = {}
        for trial, ret in zip(trials, returns, strict=True):
            state = _tell(study, trial, ret)
            outcomes[trial.number] = state.name
            if state == TrialState.FAIL:
                failed.append(ret)
        if parent is not None:
            parent.record(outcomes)
        if failed and len(failed) / len(returns) > sweeper.max_failure_rate:
            log.error("%d of %d trials failed (max_failure_rate=%s)", len(failed), len(returns),
                      sweeper.max_failure_rate)
            for ret in failed:
                _ = ret.return_value  # re-raises the job's exception with its traceback
        to_go -= batch


def _tell(study: optuna.Study, trial: optuna.Trial, ret: JobReturn) -> TrialState:
    if ret.status == JobStatus.FAILED:
        # The job's exception is kept in _return_value; the public getter would also log a pruned trial as
        # "Error executing job", which it is not.
        error = ret._return_value
        state = TrialState.PRUNED if isinstance(error, optuna.TrialPruned) else TrialState.FAIL
        study.tell(trial, state=state)
        log.info("trial %d %s: %s", trial.number, state.name.lower(), error)
        return state
    value = ret.return_value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        # e.g. task.objective names a metric the job could not compute; a NaN would poison the sampler
        log.warning("trial %d returned %r, not a finite number: told FAIL", trial.number, value)
        study.tell(trial, state=TrialState.FAIL)
        return TrialState.FAIL
    study.tell(trial, number)
    return TrialState.COMPLETE


def _write_results(study: optuna.Study, sweep_dir: Path, row: Any) -> None:
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "trials": counts}
    try:
        best = study.best_trial
    except ValueError:  # no trial completed
        log.warning("no trial of study %r completed", study.study_name)
    else:
        results |= {"best_params": best.params, "best_value": best.value, "best_trial": best.number}
        if row is not None and row.number == best.number:  # its MLflow run and its own model file
            results |= {"best_run_id": row.run_id, "best_model_path": row.model_path}
        log.info("best trial %d: %s -> %s", best.number, best.params, best.value)
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
