"""A password typed as an override must not reach the MLflow run name."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path


def test_a_literal_password_override_is_masked_in_the_run_name(run_engine: Callable, engine_root: Path) -> None:
    literal = "hunter2-Typed-On-Cli"
    proc = run_engine("task=prepare", "storage=timescaledb", f"storage.password={literal}", "storage.port=1",
                      "storage.connect_timeout=2", timeout=300)
    assert proc.returncode != 0  # nothing listens on port 1; the run is still recorded
    dbs = list(engine_root.rglob("mlflow.db"))
    assert dbs, proc.stderr
    with sqlite3.connect(dbs[0]) as con:
        names = [n for (n,) in con.execute("SELECT name FROM runs")]
        tags = [v for (v,) in con.execute("SELECT value FROM tags")]
    assert names and all(literal not in n for n in names + tags)
    assert any("storage.password=***" in n for n in names) and any("storage.port=1" in n for n in names)
    assert literal not in proc.stdout + proc.stderr


def test_a_sweep_masks_typed_passwords_in_its_parent_run_and_summary_table(run_engine: Callable,
                                                                           engine_root: Path) -> None:
    literal = "hunter2-Typed-In-A-Sweep"
    # swept: Hydra prints each job's own value ("#0 : ... storage.password=<one of them>")
    proc = run_engine("--multirun", "task=train", "model=random_forest", "features=minimal", "smoke=true",
                      "task.report=[]", "task.log_model=false", "storage=timescaledb",
                      f"storage.password={literal}-A,{literal}-B", "hydra.sweep.dir=sweep", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (db,) = list(engine_root.rglob("mlflow.db"))
    with sqlite3.connect(db) as con:
        stored = [str(v) for table, column in (("runs", "name"), ("tags", "value"), ("params", "value"))
                  for (v,) in con.execute(f"SELECT {column} FROM {table}")]
    assert any("sweep.overrides" in k for (k,) in sqlite3.connect(db).execute("SELECT key FROM params"))
    tables = [p.read_text() for p in (engine_root / "sweep").glob("sweep_summary.*")]
    assert len(tables) == 3 and any("storage.password=***" in t for t in tables)  # masked alike: the caption
    logged = [p.read_text() for p in engine_root.rglob("mlartifacts/**/config.yaml")]  # the config artifacts
    assert len(logged) == 2 and all("password: '***'" in text for text in logged)
    assert all(literal not in text for text in [*stored, *tables, *logged, proc.stdout + proc.stderr])


def test_a_url_password_is_masked_wherever_an_override_is_shown() -> None:
    from engine.redact import mask_override, redact_text

    assert mask_override("tracking.uri=postgresql://ml:s3cr:et@db:5432/mlflow") == \
        "tracking.uri=postgresql://ml:***@db:5432/mlflow"
    assert redact_text("MLflow run x (http://u:pw@127.0.0.1:5000)") == "MLflow run x (http://u:***@127.0.0.1:5000)"
    assert mask_override("+connector.api_key=abc") == "+connector.api_key=***"
    assert mask_override("storage.password=${secret:db_password}") == "storage.password=${secret:db_password}"
    assert mask_override("tracking.uri=postgresql://ml:pa/ss#1@db/mlflow") == "tracking.uri=postgresql://ml:***@db/mlflow"
    for untouched in ("tracking.uri=postgresql://ml@db/mlflow", "source.path=s3://bucket/key", "to=a@b.example",
                      "tracking.uri=postgresql://${oc.env:U}:${oc.env:P}@db/mlflow"):
        assert mask_override(untouched) == untouched
    started = time.perf_counter()
    redact_text("a-" * 100_000 + "://" + "x@" * 1000)  # a long line with a scheme and an "@": no blow-up
    assert time.perf_counter() - started < 0.5


def test_a_url_password_typed_as_an_override_never_prints(run_engine: Callable) -> None:
    proc = run_engine("--cfg", "job", "tracking.uri=postgresql://ml:Url-Pass-42@db.internal/mlflow", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "postgresql://ml:***@db.internal/mlflow" in proc.stdout and "Url-Pass-42" not in proc.stdout + proc.stderr
