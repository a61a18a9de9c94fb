from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from engine.data.frames import fingerprint
from engine.storage.parquet import ParquetStore
from engine.storage.timescaledb import TimescaleDBClient
from tests.pgcluster import PgServer

SAMPLE_SLICE = ["source.start=2024-03-01", "source.end=2024-03-03"]


def _runs(root: Path, experiment: str = "engine-prepare") -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} missing"
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_prepare_writes_raw_parquet_and_tracks_one_run(run_engine, engine_root: Path) -> None:
    proc = run_engine("task=prepare", *SAMPLE_SLICE, check=True)
    assert "rows: 2,880" in proc.stderr and "missing bars: 0" in proc.stderr
    bars = ParquetStore(engine_root / "data" / "raw").read_bars("BTCUSD", "M1")
    assert len(bars) == 2880
    assert bars.index[0] == pd.Timestamp("2024-03-01", tz="UTC")

    (run,) = _runs(engine_root)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "task=prepare,source.start=2024-03-01,source.end=2024-03-03"
    assert run.data.metrics["prepare/rows"] == 2880
    assert run.data.params["source.start"] == "2024-03-01"
    assert run.data.params["paths.raw"] == str(engine_root / "data" / "raw")
    assert run.data.tags["data_fingerprint"] == fingerprint(bars)
    assert run.data.tags["git_commit"]
    client = MlflowClient(tracking_uri=f"sqlite:///{engine_root}/mlflow.db")
    config_text = Path(client.download_artifacts(run.info.run_id, "config/config.yaml", str(engine_root))).read_text()
    assert "max_missing_fraction" in config_text

    again = run_engine("task=prepare", *SAMPLE_SLICE, check=True)
    assert "new rows stored: 0" in again.stderr


def test_multirun_jobs_share_one_experiment(run_engine, engine_root: Path) -> None:
    run_engine("--multirun", "task=prepare", "source.start=2024-03-01", "source.end=2024-03-02,2024-03-03",
               check=True)
    runs = _runs(engine_root)
    assert len(runs) == 2
    assert {r.data.metrics["prepare/rows"] for r in runs} == {1440.0, 2880.0}
    assert len({r.data.tags["sweep_dir"] for r in runs}) == 1


def test_failing_job_is_recorded_failed_and_writes_nothing(run_engine, engine_root: Path) -> None:
    proc = run_engine("task=prepare", "source.start=2030-01-01")
    assert proc.returncode == 1
    assert "returned no BTCUSD M1 bars" in proc.stderr
    (run,) = _runs(engine_root)
    assert run.info.status == "FAILED" and "DataQualityError" in run.data.tags["error"]
    assert not (engine_root / "data" / "raw").exists()


@pytest.mark.postgres
def test_prepare_into_postgres(run_engine, pg: PgServer) -> None:
    run_engine("task=prepare", "storage=timescaledb", *SAMPLE_SLICE, f"storage.host={pg.host}",
               f"storage.port={pg.port}", f"storage.user={pg.user}", f"storage.dbname={pg.dbname}",
               f"storage.password={pg.password}", "tracking=off", check=True)
    with TimescaleDBClient(pg.host, pg.port, pg.dbname, pg.user, pg.password) as db:
        assert len(db.read_bars("BTCUSD", "M1", "2024-03-01", "2024-03-03")) == 2880
