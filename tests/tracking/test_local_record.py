"""Two jobs started in the same second share Hydra's default run folder (outputs/<day>/<HH-MM-SS>): writing
the run's JSON records there must not fail either job (it did: both used one temp file name)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from engine.tracking.mlflow import LocalRecord


def _write_tags(folder: str, who: int, times: int) -> None:
    record = LocalRecord(Path(folder))
    for i in range(times):
        record.tags({f"job{who}": str(i)})


def test_two_processes_write_one_run_folder_without_failing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    jobs = [context.Process(target=_write_tags, args=(str(tmp_path), who, 300)) for who in (0, 1)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
    assert [job.exitcode for job in jobs] == [0, 0]
    assert json.loads((tmp_path / "tags.json").read_text())  # a whole file, whichever job wrote it last
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_description_another_job_set_at_the_same_moment_does_not_fail_a_job(tmp_path: Path) -> None:
    """Parallel jobs on a new experiment both see no description and both set it; a database store (an MLflow
    server on PostgreSQL) refuses the second insert. That job goes on with the experiment as it is."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from engine.tracking.mlflow import TrackingSettings, experiment_id

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = MlflowClient(tracking_uri=uri)
    made = first.create_experiment("race")  # made by a sweep's parent run, without a description

    class LateClient(MlflowClient):  # the real client; its tag insert loses the race to the other job
        def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
            first.set_experiment_tag(experiment_id, key, "the other job's description")
            raise MlflowException("duplicate key value violates unique constraint \"experiment_tag_pk\"")

    settings = TrackingSettings(enabled=True, uri=uri, experiment="race", description="this job's description")
    assert experiment_id(LateClient(tracking_uri=uri), settings) == made
    assert first.get_experiment(made).tags["mlflow.note.content"] == "the other job's description"
