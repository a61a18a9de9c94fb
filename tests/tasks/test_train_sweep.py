"""A two-trial Optuna sweep (hydra-optuna-sweeper + joblib launcher) over model and trading parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.tracking.mlflow import metric_key
from tests.tasks.conftest import Store

SWEPT = ("model.params.max_depth", "model.params.learning_rate", "model.params.n_estimators",
         "model.params.min_child_weight", "backtest.long_threshold", "backtest.short_threshold")


def test_two_trial_optuna_sweep_lands_in_one_experiment(run_engine, engine_root: Path) -> None:
    # A fresh project: no MLflow store yet, so the two parallel trials would race to create it if the
    # sweep's parent did not (engine.tasks.sweeps.PrepareTrackingStore).
    assert not (engine_root / "mlflow.db").exists()
    store = Store(engine_root)
    proc = run_engine("--multirun", "+experiment=xgb_1m", "hparams_search=xgb_optuna", "smoke=true",
                      "task.log_model=false", "task.report=[confusion_matrix]", "hydra.sweeper.n_trials=2",
                      "hydra.sweep.dir=sweep", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    every = store.runs("xgb_1m")
    # the study's own run (issue 16) and its trials' runs, which are its children
    study, = (r for r in every if r.data.tags.get("optuna_role") == "study")
    runs = [r for r in every if r is not study]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {study.info.run_id}
    assert len(runs) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["sweep_job"] for r in runs} == {"0", "1"}
    assert len({r.data.tags["sweep_dir"] for r in runs}) == 1
    # Optuna proposed different model hyperparameters and trading thresholds for the two trials
    proposals = [tuple(r.data.params[k] for k in SWEPT) for r in runs]
    assert proposals[0] != proposals[1]
    # each trial saved its own model
    assert len({r.data.tags["model_path"] for r in runs}) == 2
    # the sweeper optimised the metric the train task returned (task.objective)
    result = yaml.safe_load((engine_root / "sweep" / "optimization_results.yaml").read_text())
    objective = "val_sharpe"
    best = max(r.data.metrics[metric_key(objective)] for r in runs)
    assert result["best_value"] == pytest.approx(best)
