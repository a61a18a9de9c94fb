"""A password typed as an override must not reach the MLflow run name."""

from __future__ import annotations

import sqlite3
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
