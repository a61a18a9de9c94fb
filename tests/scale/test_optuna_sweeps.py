"""engine's Optuna sweeper on a current Optuna: one study in the harness's PostgreSQL shared by two sweeper
processes running at once, and pruning fed by the Lightning validation loss.

The storage URL (with the database password) reaches the sweepers and their trials only through an
environment variable (``hydra.sweeper.storage=${oc.env:...}``), never through a file Hydra writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.pgcluster import PgServer
from tests.scale.conftest import completed_study, create_database
from tests.tasks.conftest import Store

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STORAGE = "hydra.sweeper.storage=${oc.env:ENGINE_TEST_OPTUNA_STORAGE}"


def _sweep(root: Path, url: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "ENGINE_ROOT": str(root), "ENGINE_TEST_OPTUNA_STORAGE": url, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "engine", *args, STORAGE], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    return out + err


def test_two_sweepers_contribute_to_one_study_in_postgres(pg: PgServer, engine_root: Path, store: Store) -> None:
    # the MLflow store exists already (two sweepers starting on one fresh SQLite file would race to create it;
    # sweepers on several machines share a tracking server instead)
    url = create_database(pg, "optuna_shared")
    common = ["+experiment=xgb_1m", "hparams_search=xgb_optuna", "smoke=true", "task.log_model=false",
              "task.report=[]", "hydra.sweeper.study_name=shared", "hydra.sweeper.n_trials=2",
              "hydra.sweeper.n_jobs=1"]
    sweepers = [_sweep(engine_root, url, *common, f"hydra.sweep.dir={engine_root}/sweep_{i}") for i in (0, 1)]
    logs = [_finish(p) for p in sweepers]
    assert sum("(created," in log for log in logs) == 1 and sum("(joined," in log for log in logs) == 1
    assert url.split("@")[0].split(":")[-1] not in "".join(logs)  # the password never printed

    study = optuna.load_study(study_name="shared", storage=url)
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and {t.state for t in trials} == {TrialState.COMPLETE}
    parent, children = completed_study(store, "xgb_1m", 4)
    # each sweeper ran two of the four trials, the two at the same time; each trial its own model
    by_sweep = {d: [r for r in children if r.data.tags["sweep_dir"] == d] for d in {r.data.tags["sweep_dir"] for r in children}}
    assert sorted(len(v) for v in by_sweep.values()) == [2, 2]
    a, b = by_sweep.values()
    assert min(r.info.end_time for r in a) > min(r.info.start_time for r in b)
    assert min(r.info.end_time for r in b) > min(r.info.start_time for r in a)
    assert len({r.data.tags["model_path"] for r in children}) == 4
    for i in (0, 1):
        results = yaml.safe_load((engine_root / f"sweep_{i}" / "optimization_results.yaml").read_text())
        assert results["study_name"] == "shared"
    assert parent.data.metrics["sweep/best_value"] == pytest.approx(study.best_value)


def test_pruner_stops_trials_on_their_validation_loss(pg: PgServer, engine_root: Path, store: Store) -> None:
    url = create_database(pg, "optuna_pruning")
    # A finished trial whose validation loss was 0 after every epoch: a new trial's loss is worse than that
    # median at its first report, so MedianPruner (1 startup trial, no warm-up) prunes it there. The study
    # maximises val_sharpe, so the sweeper reports the loss negated (higher is better).
    seeded = optuna.create_study(study_name="pruned", storage=url, direction="maximize")
    seeded.add_trial(optuna.trial.create_trial(value=0.0, intermediate_values={0: 0.0, 1: 0.0}))
    proc = _sweep(engine_root, url, "+experiment=lstm_5m", "hparams_search=lstm_optuna", "smoke=true",
                  "task.smoke_max_epochs=2", "task.report=[]", "task.log_model=false", "hydra.sweeper.n_trials=2",
                  "hydra.sweeper.study_name=pruned", "hydra.sweeper.pruner.n_startup_trials=1",
                  "hydra.sweeper.pruner.n_warmup_steps=0", f"hydra.sweep.dir={engine_root}/sweep")
    _finish(proc)
    study = optuna.load_study(study_name="pruned", storage=url)
    new = [t for t in study.get_trials() if t.number > 0]
    assert len(new) == 2 and {t.state for t in new} == {TrialState.PRUNED}
    assert all(list(t.intermediate_values) == [0] for t in new)  # stopped after the first epoch
    runs = {r.data.tags["optuna_trial"]: r for r in store.runs("lstm_5m") if "optuna_trial" in r.data.tags}
    for trial in new:
        run = runs[str(trial.number)]
        assert run.info.status == "KILLED" and run.data.tags["optuna_state"] == "PRUNED"
        # the value the pruner judged is the val_loss Lightning logged for that epoch (val/loss in MLflow)
        first, = store.client.get_metric_history(run.info.run_id, "val/loss")
        assert trial.intermediate_values[0] == pytest.approx(-first.value, rel=1e-6)
    results = yaml.safe_load((engine_root / "sweep" / "optimization_results.yaml").read_text())
    assert results["trials"]["pruned"] == 2
