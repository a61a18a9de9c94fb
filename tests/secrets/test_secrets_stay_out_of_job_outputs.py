"""A secret carried through full ``python -m engine`` jobs against a real PostgreSQL server.

The database password (and, in the leak-prone case, the database name) exist only in the encrypted
secrets file and the process's memory. After each job, succeeding or failing, no file under the job's
root (Hydra outputs and logs, the MLflow SQLite store and artifact dir, the data dir) and neither
stdout nor stderr may contain the value.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest

from engine.secrets import SecureConfig
from tests.pgcluster import PgServer

pytestmark = pytest.mark.postgres


def _overrides(pg: PgServer) -> list[str]:
    return ["task=prepare", "storage=timescaledb", "smoke=true", f"storage.host={pg.host}",
            f"storage.port={pg.port}", f"storage.user={pg.user}", f"storage.dbname={pg.dbname}",
            f"storage.sslrootcert={pg.sslrootcert}", "storage.sslmode=require"]


def _assert_nowhere(root: Path, proc, value: str) -> None:
    assert value not in proc.stdout and value not in proc.stderr
    needle = value.encode()
    scanned = 0
    for path in root.rglob("*"):
        if path.is_file():
            scanned += 1
            assert needle not in path.read_bytes(), f"secret found in {path.relative_to(root)}"
    names = {p.name for p in root.rglob("*")}
    # The scan covered what a job writes: Hydra's config and log, the MLflow store and its artifacts.
    assert {"config.yaml", "overrides.yaml", "mlflow.db", "config", "secrets.enc"} <= names
    assert any(n.endswith(".log") for n in names)
    assert scanned >= 6


def _mlflow(root: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    with sqlite3.connect(root / "mlflow.db") as db:
        (run_id, status), = db.execute("SELECT run_uuid, status FROM runs").fetchall()
        params = dict(db.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)).fetchall())
        tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)).fetchall())
    return status, params, tags


def test_secret_reaches_the_database_and_nothing_else(pg: PgServer, run_engine: Callable, engine_root: Path,
                                                      key: str) -> None:
    SecureConfig(engine_root / "secrets.enc", key).write({"db_password": pg.password})
    proc = run_engine(*_overrides(pg), env={"CONFIG_AES_KEY": key})
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The password really was used: the job's bars are in the database.
    with psycopg2.connect(**pg.kwargs(), sslmode="require") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ohlcv WHERE symbol = 'BTCUSD'")
        assert cur.fetchone()[0] > 0
    conn.close()
    status, params, _ = _mlflow(engine_root)
    assert status == "FINISHED" and params["storage.password"] == "${secret:db_password}"
    _assert_nowhere(engine_root, proc, pg.password)


def test_failing_job_with_a_wrong_password_leaks_nothing(pg: PgServer, run_engine: Callable,
                                                         engine_root: Path, key: str) -> None:
    canary = "CanaryPw-3b9f7d1e-never-log-me"
    SecureConfig(engine_root / "secrets.enc", key).write({"db_password": canary})
    proc = run_engine(*_overrides(pg), env={"CONFIG_AES_KEY": key})
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "authentication failed" in proc.stderr and "Traceback" not in proc.stderr
    status, params, tags = _mlflow(engine_root)
    assert status == "FAILED" and "authentication failed" in tags["error"]
    assert params["storage.password"] == "${secret:db_password}"
    _assert_nowhere(engine_root, proc, canary)


def test_a_secret_echoed_by_an_error_is_masked_everywhere(pg: PgServer, run_engine: Callable,
                                                          engine_root: Path, key: str) -> None:
    # PostgreSQL names the database it cannot find, and the store's error repeats it: the redaction
    # layer, not the error's author, must keep this value out of the console, the log and MLflow.
    canary = "canarydb_5e0c2a7f_secret"
    SecureConfig(engine_root / "secrets.enc", key).write({"db_password": pg.password, "db_name": canary})
    args = [a for a in _overrides(pg) if not a.startswith("storage.dbname=")]
    proc = run_engine(*args, "storage.dbname=${secret:db_name}", env={"CONFIG_AES_KEY": key})
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'database "***" does not exist' in proc.stderr
    status, params, tags = _mlflow(engine_root)
    assert status == "FAILED" and '"***" does not exist' in tags["error"]
    assert params["storage.dbname"] == "${secret:db_name}"
    _assert_nowhere(engine_root, proc, canary)
    _assert_nowhere(engine_root, proc, pg.password)


def test_missing_key_fails_in_one_line_before_any_connection(pg: PgServer, run_engine: Callable,
                                                             engine_root: Path, key: str) -> None:
    SecureConfig(engine_root / "secrets.enc", key).write({"db_password": pg.password})
    proc = run_engine(*_overrides(pg), env={"CONFIG_AES_KEY": ""})
    assert proc.returncode == 1
    assert "CONFIG_AES_KEY is not set" in proc.stderr and "Traceback" not in proc.stderr
    _assert_nowhere(engine_root, proc, pg.password)
