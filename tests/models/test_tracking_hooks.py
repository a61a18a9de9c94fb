"""The tracking layer's hooks into the model layer: Lightning logs into an existing MLflow run without
closing it; a fitted pipeline logs as an MLflow pyfunc model through an explicit client (the process-wide
tracking URI and active run untouched); dvc_track versions the artifact with the real DVC in a temp git
repo, and is refused before any training when the hooks are not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import OperationalError
from engine.models.pipeline import MLPipeline
from engine.tracking.dvc import DVCManager
from engine.tracking.model_hooks import MlflowTrainingLogger, install, log_pipeline_model, run_hooks


@pytest.fixture
def mlflow_run(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(exp)
    return client, uri, run.info.run_id


def test_lightning_writes_into_the_job_run_and_model_loads_back(bars, quick, mlflow_run):
    import mlflow
    import torch

    client, uri, run_id = mlflow_run
    pipe = MLPipeline("cnn1d", {"channels": 4, "num_layers": 2}, trainer=quick,
                      hooks=[MlflowTrainingLogger(run_id, uri)])
    pipe.fit(bars.W[:600], bars.yw[:600], cv=2, feature_names=bars.names)
    data = client.get_run(run_id).data
    assert {"train/loss", "val/loss", "cv0-val/loss", "cv1-train/loss"} <= set(data.metrics)  # grouped names
    assert client.get_run(run_id).info.status == "RUNNING"  # the job closes its run, not Lightning

    previous = mlflow.get_tracking_uri()
    uri_model = log_pipeline_model(pipe, run_id, uri)
    assert mlflow.get_tracking_uri() == previous and mlflow.active_run() is None  # nothing global swapped
    (logged,) = client.search_logged_models([client.get_run(run_id).info.experiment_id])
    assert logged.source_run_id == run_id and uri_model == f"models:/{logged.model_id}"
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(uri_model)
        got = model.predict(bars.W[-20:].astype("float32"))
        info = mlflow.models.get_model_info(uri_model)
        requirements = Path(mlflow.pyfunc.get_model_dependencies(uri_model)).read_text()
    finally:
        mlflow.set_tracking_uri(previous)
    assert np.allclose(np.asarray(got), pipe.predict_proba(bars.W[-20:]))
    assert f"torch=={torch.__version__}" in requirements and "lightning==" in requirements
    assert info.signature is not None and list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 8, 4]
    assert client.get_run(run_id).info.status == "RUNNING"


def test_tabular_model_logs_a_column_signature(bars, mlflow_run):
    import mlflow

    _, uri, run_id = mlflow_run
    pipe = MLPipeline("xgboost", {"n_estimators": 5}, hooks=run_hooks(run_id, uri))
    pipe.fit(bars.X, bars.y)
    uri_model = log_pipeline_model(pipe, run_id, uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        info = mlflow.models.get_model_info(uri_model)
        got = mlflow.pyfunc.load_model(uri_model).predict(bars.X.iloc[-5:])
    finally:
        mlflow.set_tracking_uri(previous)
    assert [c["name"] for c in info.signature.inputs.to_dict()] == bars.names
    assert np.allclose(np.asarray(got), pipe.predict_proba(bars.X.iloc[-5:]))


@pytest.fixture
def dvc_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True, timeout=30)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True, timeout=120)
    return repo


@pytest.fixture
def hooks_installed():
    install()


def test_dvc_track_versions_the_saved_artifact(bars, dvc_repo, hooks_installed):
    pipe = MLPipeline("random_forest", {"n_estimators": 5}, dvc_track=True)
    pipe.fit(bars.X, bars.y)
    path = pipe.save(dvc_repo / "models" / "rf.zip")
    pointer = path.with_name("rf.zip.dvc")
    assert pointer.is_file() and pipe.dvc_file_ == pointer
    import hashlib

    assert f"md5: {hashlib.md5(path.read_bytes()).hexdigest()}" in pointer.read_text()
    assert "/rf.zip" in (path.parent / ".gitignore").read_text()
    assert (dvc_repo / ".dvc" / "cache").is_dir()
    assert np.array_equal(MLPipeline.load(path).predict(bars.X[-10:]), pipe.predict(bars.X[-10:]))


def test_dvc_manager_errors(tmp_path, dvc_repo, hooks_installed):
    with pytest.raises(OperationalError, match="not a DVC repository"):
        DVCManager(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    with pytest.raises(OperationalError, match="outside the DVC repository"):
        DVCManager(dvc_repo).add(outside)
    with pytest.raises(OperationalError, match="does not exist"):
        DVCManager(dvc_repo).add(dvc_repo / "nope.bin")
    pipe = MLPipeline("xgboost", {"n_estimators": 2}, dvc_track=True)
    pipe.fit(np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) % 2)
    with pytest.raises(OperationalError, match="no DVC repository"):
        pipe.save(tmp_path / "plain" / "m.zip")


def test_dvc_track_without_the_tracking_hooks_is_refused_before_training():
    # a fresh process: the model layer alone has no versioning installed
    code = ("from engine.models.pipeline import MLPipeline\n"
            "try:\n    MLPipeline('random_forest', dvc_track=True)\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.startswith("OperationalError") and "engine.tracking.model_hooks.install()" in out.stdout


def test_the_package_root_installs_the_hooks():
    code = ("import engine\nfrom engine.models.hooks import versioning_hooks\n"
            "engine.MLPipeline\nprint(type(versioning_hooks(None)).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "DvcVersioning"


def test_run_hooks_are_empty_without_a_run():
    assert run_hooks(None, None) == []
