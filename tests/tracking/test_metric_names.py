"""Flat metric names in Python, grouped names in MLflow (issue 15, item 5): ``val_sharpe`` is charted as
``val/sharpe`` beside ``val/loss``; ``metrics.json`` in the run folder keeps the flat names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.tracking.mlflow import TrackingSettings, flat_metrics, flat_name, metric_key, start_run


@pytest.mark.parametrize(("flat", "group", "grouped"), [
    ("val_sharpe", None, "val/sharpe"),
    ("test_equity_curve", "train", "test/equity_curve"),
    ("train_loss", "fit", "train/loss"),
    ("val_loss", "fit", "val/loss"),
    ("clean_dropped_rows", "train", "clean/dropped_rows"),
    ("fit_seconds", "train", "fit/seconds"),
    ("fold_total_return", "backtest", "fold/total_return"),
    ("n_train", "train", "data/n_train"),
    ("sharpe", "backtest", "backtest/sharpe"),
    ("buy_hold_sharpe", "backtest", "backtest/buy_hold_sharpe"),
    ("equity", "live", "live/equity"),
    ("rows", None, "rows"),
])
def test_metric_key_groups_and_flat_name_undoes_it(flat: str, group: str | None, grouped: str) -> None:
    assert metric_key(flat, group) == grouped
    assert flat_name(grouped) == flat


def test_names_with_a_group_of_their_own_are_kept() -> None:
    assert metric_key("sweep/best_value", "train") == "sweep/best_value"
    assert metric_key("epoch", "fit") == "fit/epoch"  # Lightning's own figures, under fit/
    assert metric_key("lr-Adam", "fit") == "fit/lr-Adam"


def test_a_run_logs_grouped_names_and_keeps_flat_ones_in_its_folder(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    settings = TrackingSettings(enabled=True, uri=uri, experiment="names", metric_group="train")
    folder = tmp_path / "job"
    with start_run(settings, params={}, tags={}, local_dir=folder) as run:
        run.log_metrics({"val_sharpe": 1.5, "n_train": 10.0, "clean_rows_in": 3.0})
        run.log_series("test_equity_curve", [1.0, 1.1], [0, 1])
    logged = MlflowClient(uri).get_run(run.run_id).data.metrics
    assert set(logged) == {"val/sharpe", "data/n_train", "clean/rows_in", "test/equity_curve"}
    assert flat_metrics(logged)["val_sharpe"] == 1.5
    assert json.loads((folder / "metrics.json").read_text()) == {"clean_rows_in": 3.0, "n_train": 10.0,
                                                                 "val_sharpe": 1.5}
    assert (folder / "metrics" / "test_equity_curve.csv").is_file()
    # the sweep summary reads which run a job folder belongs to, and how it ended
    assert json.loads((folder / "run.json").read_text())["run_id"] == run.run_id
    assert json.loads((folder / "run.json").read_text())["status"] == "FINISHED"
