"""task=backtest end to end on the bundled sample in smoke mode: a saved model through the real CLI (a path
and an MLflow model URI), walk-forward in process, and the refusals that must come before any work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.config.validate import validate
from engine.errors import ConfigError
from engine.tracking.mlflow import flat_metrics
from engine.trading.backtest import METRIC_NAMES as TRADING
from tests.tasks.conftest import Store

# A small, quick XGBoost on 1m bars; backtest runs compose the same experiment so the dataset matches.
MODEL = ["+experiment=xgb_1m", "model.params.n_estimators=30", "smoke=true"]
REPORT_FILES = {"trades.csv", "trades.parquet", "equity.png", "monthly_returns.png", "trade_pnl.png", "exposure.png",
                "metrics.json", "report.html"}


def _train(compose_job) -> dict[str, float]:
    from engine.tasks import train

    cfg = compose_job([*MODEL, "task.log_model=false", "task.report=[]"])
    validate(cfg)
    return train.run(cfg)


def _backtest(compose_job, overrides: list[str]) -> dict[str, float]:
    from engine.tasks import backtest

    cfg = compose_job([*MODEL, "task=backtest", *overrides])
    validate(cfg)
    return backtest.run(cfg)


def _report_folder(stderr: str) -> Path:
    found = re.search(r"^report: (.+report\.html)$", stderr, re.MULTILINE)
    assert found, stderr[-2000:]
    return Path(found.group(1)).parent


def _check_report(folder: Path, n_trades: float) -> None:
    assert {p.name for p in folder.iterdir()} >= REPORT_FILES
    trades = pd.read_csv(folder / "trades.csv")
    assert len(trades) == n_trades == len(pd.read_parquet(folder / "trades.parquet"))
    assert {"entry_time", "exit_time", "entry_price", "exit_price", "side", "size", "pnl", "costs",
            "exit_reason"} <= set(trades.columns)
    page = (folder / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4  # self-contained: every figure embedded
    assert "http://" not in page and "https://" not in page


def test_a_saved_model_backtests_through_the_cli(run_engine, compose_job, store: Store, engine_root: Path) -> None:
    trained = _train(compose_job)
    model = engine_root / "models" / "xgb_1m" / "pipeline.zip"
    assert model.is_file()

    # the train task's test span, backtested on its own: the same numbers train logged as test_*
    proc = run_engine(*MODEL, "task=backtest", "task.span=test", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [r for r in store.runs("xgb_1m") if r.data.tags.get("task") == "backtest"]
    logged = flat_metrics(run.data.metrics)  # MLflow shows them as backtest/sharpe, ...
    for name in (*TRADING, "accuracy", "f1", "log_loss"):
        assert logged[name] == pytest.approx(trained[f"test_{name}"], rel=1e-12, nan_ok=True), name
    assert run.data.tags["data_fingerprint"] and run.data.tags["model_path"] == str(model)
    assert run.data.tags["model_data_fingerprint"] == run.data.tags["data_fingerprint"]  # same bars as training
    assert {f"backtest/{f}" for f in REPORT_FILES} <= store.artifacts(run.info.run_id)
    _check_report(_report_folder(proc.stderr), logged["n_trades"])

    # any span, risk-sized with ATR stops, tracking off: the report is in the Hydra run folder
    proc = run_engine(*MODEL, "task=backtest", f"task.model={model}", "source.start=2024-02-01",
                      "source.end=2024-02-06", "tracking=off", "backtest.sizing=risk", "backtest.stop_loss=3",
                      "backtest.take_profit=6", "backtest.stop_unit=atr", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = _report_folder(proc.stderr)
    assert folder.is_relative_to(engine_root / "outputs")
    trades = pd.read_csv(folder / "trades.csv", parse_dates=["entry_time", "exit_time"])
    assert trades["entry_time"].min() >= pd.Timestamp("2024-02-01", tz="UTC")
    assert trades["exit_time"].max() <= pd.Timestamp("2024-02-06", tz="UTC")
    assert {"stop_loss", "take_profit"} & set(trades["exit_reason"])
    assert len(store.runs("xgb_1m")) == 2  # tracking=off added no run
    _check_report(folder, len(trades))


def test_an_mlflow_model_uri_backtests_like_the_file(compose_job, store: Store, engine_root: Path) -> None:
    import mlflow

    from engine.models.pipeline import MLPipeline
    from engine.tracking.model_hooks import log_pipeline_model

    _train(compose_job)
    uri = f"sqlite:///{engine_root}/mlflow.db"
    (train_run,) = store.runs("xgb_1m")
    pipe = MLPipeline.load(engine_root / "models" / "xgb_1m" / "pipeline.zip")
    logged = log_pipeline_model(pipe, train_run.info.run_id, uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("btc_xgb")
    location = client.get_logged_model(logged.removeprefix("models:/")).artifact_location
    version = client.create_model_version("btc_xgb", source=location, run_id=train_run.info.run_id)
    client.set_registered_model_alias("btc_xgb", "champion", version.version)

    from_file = _backtest(compose_job, ["task.span=test"])
    from_uri = _backtest(compose_job, ["task.span=test", "task.model=models:/btc_xgb@champion"])
    assert from_uri == pytest.approx(from_file, rel=1e-12, nan_ok=True)
    with pytest.raises(ConfigError, match=r"task\.model: cannot fetch models:/btc_xgb@nope"):
        _backtest(compose_job, ["task.model=models:/btc_xgb@nope"])


def test_walk_forward_trains_each_fold_behind_an_embargo(compose_job, store: Store) -> None:
    metrics = _backtest(compose_job, ["task.walk_forward.enabled=true", "task.walk_forward.train_bars=6000",
                                      "task.walk_forward.retrain_every=5000", "labels.horizon=7"])
    (run,) = store.runs("xgb_1m")
    folds = json.loads(store.text(run.info.run_id, "report/walk_forward.json"))["folds"]
    assert len(folds) >= 2
    for fold in folds:
        assert fold["embargo"] >= 7  # raised to the label horizon
        assert fold["train"][1] + fold["embargo"] == fold["test"][0]
        assert fold["train"][1] - fold["train"][0] == 6000
    assert [f["test"][0] for f in folds[1:]] == [f["test"][1] for f in folds[:-1]]
    # one stitched series traded as one backtest; each fold's figures at its step
    assert metrics["n_bars"] == folds[-1]["test"][1] - folds[0]["test"][0]
    history = store.client.get_metric_history(run.info.run_id, "fold/total_return")
    assert sorted(m.step for m in history) == list(range(len(folds)))
    assert np.isfinite(metrics["sharpe"]) and run.data.tags["walk_forward_folds"] == str(len(folds))
    assert {f"backtest/{f}" for f in REPORT_FILES} <= store.artifacts(run.info.run_id)


def test_refusals_come_before_any_work(compose_job, store: Store, engine_root: Path) -> None:
    with pytest.raises(ConfigError, match=r"task\.model: no saved model at"):
        _backtest(compose_job, ["task.model=/nowhere/pipeline.zip"])
    with pytest.raises(ConfigError, match=r"task\.model: walk-forward trains its own models"):
        _backtest(compose_job, ["task.walk_forward.enabled=true", "task.model=/nowhere/pipeline.zip"])
    with pytest.raises(ConfigError, match=r"backtest\.stop_loss"):
        _backtest(compose_job, ["backtest.sizing=risk"])
    assert store.client.get_experiment_by_name("xgb_1m") is None  # no run was opened
    # a model trained on other features is refused, naming what differs
    _train(compose_job)
    with pytest.raises(ConfigError, match="the model was trained on 63 features"):
        _backtest(compose_job, ["features=minimal"])
