"""A sweep's MLflow parent run: every trial's run is its child (tag ``mlflow.parentRunId``), and it holds the
sweep's summary table (``sweep/sweep_summary.{md,csv,html}``), the best trial and the registered model.

Hydra's basic sweeper gets one from engine's multirun callback (:mod:`engine.tasks.sweeps`); engine's Optuna
sweeper's is the study's run (:class:`engine.tracking.studies.StudyRun`, a subclass).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.redact import redact_mapping, redact_text

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
SUMMARY_DIR = "sweep"  # artifact folder of the summary files


class SweepRun:
    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    @classmethod
    def create(cls, settings: Any, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> SweepRun:
        """A new RUNNING parent run in ``settings.experiment`` (created if missing)."""
        from mlflow.tracking import MlflowClient

        from engine.tracking.mlflow import experiment_id

        client = MlflowClient(tracking_uri=settings.uri)
        run = client.create_run(experiment_id(client, settings), run_name=redact_text(name),
                                tags={k: redact_text(str(v)) for k, v in tags.items()})
        for key, value in redact_mapping(params).items():
            client.log_param(run.info.run_id, key, str(value)[:6000])
        return cls(client, run.info.run_id)

    def adopt(self, run_ids: Iterable[str]) -> None:
        """Make these runs children of this one (a job on another machine may not have been told its parent)."""
        for run_id in run_ids:
            if run_id and run_id != self.run_id:
                self.client.set_tag(run_id, PARENT_TAG, self.run_id)

    def log_files(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), SUMMARY_DIR)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in redact_mapping(tags).items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, float(value), step=step)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)
