"""A sweep ends with one table (trial, overrides, objective, status, run id, model), best trial marked: printed,
in the sweep dir, logged to the sweep's parent MLflow run, and with ``task.register_as`` the best trial's
model registered once under that name (issue 15, item 2); two sweeps in a row keep every model."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from tests.tasks.conftest import Store

QUICK = ("smoke=true", "task.report=[]")


def _table(sweep: Path) -> list[dict[str, str]]:
    with (sweep / "sweep_summary.csv").open(encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


def _check_registered(store: Store, name: str, best_run_id: str) -> None:
    versions = store.client.search_model_versions(f"name='{name}'")
    assert [v.run_id for v in versions] == [best_run_id]  # one version: the best trial's, no trial's own
    assert store.client.get_model_version_by_alias(name, "champion").run_id == best_run_id


def test_basic_sweep_has_a_parent_run_a_table_and_registers_the_best(run_engine, engine_root: Path,
                                                                     store: Store) -> None:
    proc = run_engine("--multirun", "task=train", "model=xgboost", "labels.horizon=5,15", *QUICK,
                      "task.register_as=swept_xgb", "hydra.sweep.dir=sweep", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table(engine_root / "sweep")
    assert [r["trial"] for r in rows] == ["0", "1"]
    assert [r["overrides"] for r in rows] == ["labels.horizon=5", "labels.horizon=15"]  # what differs
    assert {r["status"] for r in rows} == {"FINISHED"}
    best, = (r for r in rows if r["best"] == "*")
    assert float(best["val_sharpe (max)"]) == max(float(r["val_sharpe (max)"]) for r in rows)
    assert "best trial" in proc.stderr and best["run id"] in proc.stderr  # printed too

    every = store.runs("engine-train")
    parent, = (r for r in every if r.data.tags.get("sweep_role") == "parent")
    trials = [r for r in every if r is not parent]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent.info.run_id}
    assert {r.info.run_id for r in trials} == {r["run id"] for r in rows}
    assert parent.info.status == "FINISHED" and parent.data.tags["best_run_id"] == best["run id"]
    assert {f"sweep/sweep_summary.{ext}" for ext in ("md", "csv", "html")} <= store.artifacts(parent.info.run_id)
    assert "| * |" in store.text(parent.info.run_id, "sweep/sweep_summary.md")
    _check_registered(store, "swept_xgb", best["run id"])
    for row in rows:
        assert Path(row["model"]).is_file() and row["run id"] in row["model"]

    # a second sweep: new files, the first sweep's models untouched
    again = run_engine("--multirun", "task=train", "model=xgboost", "labels.horizon=5,15", *QUICK,
                       "hydra.sweep.dir=sweep2", timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    models = {r["model"] for r in rows} | {r["model"] for r in _table(engine_root / "sweep2")}
    assert len(models) == 4 and all(Path(m).is_file() for m in models)


def test_sweep_without_tracking_still_ends_with_the_table(run_engine, engine_root: Path) -> None:
    proc = run_engine("--multirun", "task=train", "model=xgboost", "labels.horizon=5,15", *QUICK, "tracking=off",
                      "hydra.sweep.dir=sweep", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table(engine_root / "sweep")
    assert len(rows) == 2 and sum(r["best"] == "*" for r in rows) == 1
    assert all(r["run id"] == "" and Path(r["model"]).is_file() for r in rows)
    assert "sweep: 2 trials, best trial" in proc.stderr
    assert not (engine_root / "mlflow.db").exists()
    html = (engine_root / "sweep" / "sweep_summary.html").read_text()
    assert html.count('class="best"') == 1


def test_optuna_sweep_table_names_runs_and_registers_the_best_trial(run_engine, engine_root: Path,
                                                                    store: Store) -> None:
    proc = run_engine("+experiment=xgb_1m", "hparams_search=xgb_optuna", *QUICK, "hydra.sweeper.n_trials=2",
                      "task.register_as=xgb_best", "hydra.sweep.dir=sweep", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table(engine_root / "sweep")
    assert [r["trial"] for r in rows] == ["0", "1"] and {r["status"] for r in rows} == {"COMPLETE"}
    assert all("model.params.max_depth=" in r["overrides"] for r in rows)
    best, = (r for r in rows if r["best"] == "*")
    results = yaml.safe_load((engine_root / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_run_id"] == best["run id"] and results["best_model_path"] == best["model"]
    assert float(best["val_sharpe (max)"]) == pytest.approx(results["best_value"], rel=1e-5)
    study, = (r for r in store.runs("xgb_1m") if r.data.tags.get("optuna_role") == "study")
    assert "sweep/sweep_summary.csv" in store.artifacts(study.info.run_id)
    assert study.data.tags["registered_model"] == "models:/xgb_best@champion"
    _check_registered(store, "xgb_best", best["run id"])


def test_a_summary_that_fails_fails_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hydra turns an exception in a multirun callback into a warning and exits 0; the callback raises SystemExit
    (not an Exception, so Hydra lets it through): a script chaining a sweep and its registration sees that the
    best model was not registered."""
    import engine.tasks.sweep_summary as sweep_summary
    import engine.tasks.sweeps as sweeps

    def unreadable(sweep_dir: Path, objective: str | None) -> None:
        raise OSError(f"cannot read {sweep_dir}")

    callback = sweeps.SummarizeSweep()
    callback._state = {"sweep_dir": tmp_path, "objective": "val_sharpe", "parent": None, "register_as": "best",
                       "alias": "champion", "uri": None}
    monkeypatch.setattr(sweep_summary, "basic_summary", unreadable)
    with pytest.raises(SystemExit) as stopped:
        callback.on_multirun_end(config=None)
    assert stopped.value.code == 1 and not isinstance(stopped.value, Exception)
    callback.on_multirun_end(config=None)  # summarised (or failed) once: a second end does nothing
