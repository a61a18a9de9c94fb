"""``tracking=server``: a real ``mlflow server`` on 127.0.0.1 with the harness's PostgreSQL as backend store
and an S3 API (moto's server mode) as artifact store, artifacts proxied by the server.

Two jobs log to it at once; params, metrics, plots and the model read back through ``MlflowClient``; a
secret the jobs resolve (their run name) reaches neither the database, the bucket nor the server's log.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.secrets import SecureConfig
from tests.pgcluster import PgServer
from tests.scale.services import MlflowServer, S3Server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CANARY = "CanaryRun-5c1e9a77-never-log-me"


def _dump(pg: PgServer) -> bytes:
    """Every row of the MLflow database, as pg_dump writes it."""
    proc = subprocess.run([str(pg.bindir / "pg_dump"), "--data-only", "-h", pg.host, "-p", str(pg.port), "-U",
                           pg.user, "mlflow"], capture_output=True, timeout=120,
                          env={"PGPASSWORD": pg.password, "PGSSLMODE": "require", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_two_jobs_log_to_the_server_and_read_back(mlflow_server: MlflowServer, s3: S3Server, pg: PgServer,
                                                  run_engine, engine_root: Path) -> None:
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    key = "hex:" + "ab" * 32
    SecureConfig(engine_root / "secrets.enc", key).write({"run_label": CANARY})
    # The jobs know the server's URL only: no S3 credentials (the server proxies artifacts), no DB password.
    env = {"MLFLOW_TRACKING_URI": mlflow_server.uri, "CONFIG_AES_KEY": key}
    proc = run_engine("--multirun", "tracking=server", "+experiment=xgb_1m", "smoke=true",
                      "task.report=[confusion_matrix,equity_curve]", "model.params.max_depth=3,5",
                      "tracking.run_name=${secret:run_label}", "hydra/launcher=local", env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiment = client.get_experiment_by_name("xgb_1m")
    every = client.search_runs([experiment.experiment_id])
    runs = [r for r in every if r.data.tags.get("sweep_role") != "parent"]  # the sweep's own parent run
    assert len(every) == 3 and len(runs) == 2 and {r.info.status for r in every} == {"FINISHED"}
    assert sorted(r.data.params["model.params.max_depth"] for r in runs) == ["3", "5"]
    # the two jobs ran at the same time (joblib, 2 processes)
    first, second = sorted(runs, key=lambda r: r.info.start_time)
    assert second.info.start_time < first.info.end_time
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    for run in runs:
        assert np.isfinite(run.data.metrics["val/sharpe"]) and 0 <= run.data.metrics["test/accuracy"] <= 1
        assert run.data.params["tracking.run_name"] == "${secret:run_label}"
        names = [a.path for a in client.list_artifacts(run.info.run_id)]  # plots at the root: compare view
        assert any("confusion_matrix" in n for n in names) and any("equity_curve" in n for n in names)
        plot = next(n for n in names if n.endswith(".png"))
        png = Path(client.download_artifacts(run.info.run_id, plot, str(engine_root / run.info.run_id)))
        assert png.read_bytes().startswith(b"\x89PNG")
        logged, = client.search_logged_models([experiment.experiment_id],
                                              filter_string=f"source_run_id = '{run.info.run_id}'")
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(mlflow_server.uri)  # models:/ URIs resolve against the process-wide URI
        try:
            model = mlflow.pyfunc.load_model(f"models:/{logged.model_id}")
        finally:
            mlflow.set_tracking_uri(previous)
        example = model.input_example
        proba = np.asarray(model.predict(example))
        assert proba.shape == (len(example), 2) and np.allclose(proba.sum(axis=1), 1.0)

    # the artifacts really are in the bucket, and the secret is nowhere on the server's side
    objects = s3.objects("mlflow")
    assert any("confusion_matrix" in k for k in objects) and any(k.endswith("MLmodel") for k in objects)
    needle = CANARY.encode()
    assert all(needle not in body for body in objects.values())
    assert needle not in _dump(pg)
    assert CANARY not in mlflow_server.log.read_text(errors="replace")
    assert CANARY not in proc.stdout + proc.stderr
