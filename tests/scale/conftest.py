"""Fixtures for the scale-out tests: the services of tests/scale/services.py, started once per session (the
Ray cluster once per module) and stopped by process id afterwards.

Under CI a missing piece (the `.venv-ray` environment that ``scripts/install.sh --test`` makes, or the
right to create a network namespace) fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.conftest import in_ci
from tests.pgcluster import PgServer
from tests.scale.services import (
    RAY_VENV_BIN,
    MlflowServer,
    RayCluster,
    S3Server,
    start_mlflow,
    start_s3,
    stop,
)
from tests.tasks.conftest import mlflow_template, store  # noqa: F401  (the pre-created MLflow store)


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason}; CI installs and runs it (scripts/install.sh --test)", pytrace=False)
    pytest.skip(reason)


def completed_study(runs_of: Any, experiment: str, n_trials: int) -> tuple[Any, list[Any]]:
    """(the Optuna study's parent run, its trial runs) in ``experiment``, checked: every trial is a child of the
    study's run, trials 0..n-1 each once, all COMPLETE."""
    every = runs_of.runs(experiment)
    (study,) = (r for r in every if r.data.tags.get("optuna_role") == "study")
    trials = [r for r in every if r is not study]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {study.info.run_id}
    assert sorted(int(r.data.tags["optuna_trial"]) for r in trials) == list(range(n_trials))
    assert {r.data.tags["optuna_state"] for r in trials} == {"COMPLETE"}
    return study, trials


def create_database(pg: PgServer, name: str) -> str:
    """A fresh database on the harness's PostgreSQL; returns its SQLAlchemy URL (with the password)."""
    conn = psycopg2.connect(**pg.kwargs(), sslmode="require")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"postgresql+psycopg2://{pg.user}:{pg.password}@{pg.host}:{pg.port}/{name}?sslmode=require"


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        stop(server.proc)


@pytest.fixture(scope="session")
def mlflow_server(pg: PgServer, s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    s3.client().create_bucket(Bucket="mlflow")
    backend = create_database(pg, "mlflow")
    server = start_mlflow(tmp_path_factory.mktemp("mlflow-server"), backend, "s3://mlflow/artifacts", s3)
    try:
        yield server
    finally:
        stop(server.proc)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    if not (RAY_VENV_BIN / "ray").exists():
        _missing(f"no Ray environment at {RAY_VENV_BIN.parent} (bash scripts/install.sh --test makes it)")
    probe = subprocess.run(["unshare", "--net", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        _missing(f"cannot create a network namespace for the Ray cluster: {probe.stderr.strip()}")
    cluster = RayCluster(tmp_path_factory.mktemp("ray"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
