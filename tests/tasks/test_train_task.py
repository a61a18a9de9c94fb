"""task=train / task=explain end to end on the bundled sample, in smoke mode, into a temp MLflow store.

Every experiment in conf/experiment runs here: lstm_5m through the real CLI (subprocess), the others
in-process through the compose API (same code path after composition, without re-importing torch).
Each check re-derives something from the saved model instead of trusting the logged numbers: the
loaded artifact must reproduce the test accuracy the run logged, on a freshly rebuilt dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import DictConfig
from rich.console import Console

from engine.cli import CONF_DIR
from engine.config.validate import validate
from engine.errors import ConfigError
from engine.tracking.mlflow import flat_metrics
from tests.tasks.conftest import Store

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
# lstm_5m goes through the CLI; xgb_1m and cnn1d_5m are trained by the explain tests (a tree and a net).
CLI_EXPERIMENT = "lstm_5m"
EXPLAINED = ("xgb_1m", "cnn1d_5m")
IN_PROCESS = [e for e in EXPERIMENTS if e != CLI_EXPERIMENT and e not in EXPLAINED]
# Keep tests quick: no MLflow model flavour except on the CLI run, which checks it.
FAST = ["smoke=true", "task.log_model=false"]

METRICS = ("test_accuracy", "test_balanced_accuracy", "test_f1", "test_log_loss", "test_total_return",
           "test_sharpe", "test_max_drawdown", "test_hit_rate", "test_turnover", "test_n_trades", "val_f1",
           "val_sharpe", "n_train", "n_test")
PLOTS = {"confusion_matrix_test.png", "feature_importance_test.png", "equity_curve_test.png"}


def test_every_experiment_is_covered() -> None:
    assert set(EXPERIMENTS) >= {"lstm_5m", "xgb_1m", "rf_15m", "transformer_5m", "cnn1d_5m", "dnn_1m"}
    assert {CLI_EXPERIMENT, *EXPLAINED, *IN_PROCESS} == set(EXPERIMENTS)


def _train(compose_job, overrides: list[str]) -> tuple[DictConfig, dict[str, float]]:
    from engine.tasks import train

    cfg = compose_job(overrides)
    validate(cfg)
    return cfg, train.run(cfg)


def _check_run(store: Store, cfg: DictConfig, metrics: dict[str, float] | None = None) -> Any:
    """One finished run with the metrics, plots and a saved model that reproduces its test accuracy."""
    from engine.models.pipeline import MLPipeline
    from engine.tasks.model_wiring import build_dataset

    (run,) = [r for r in store.runs(str(cfg.tracking.experiment)) if r.data.tags.get("task") == "train"]
    assert run.info.status == "FINISHED"
    logged = flat_metrics(run.data.metrics)  # MLflow groups them: val/sharpe, test/f1, ...
    for key in METRICS:
        assert key in logged, f"{key} not logged"
        if metrics is not None:
            assert logged[key] == pytest.approx(metrics[key], nan_ok=True)
    assert 0.0 <= logged["test_max_drawdown"] <= 1.0
    assert 0.0 <= logged["test_hit_rate"] <= 1.0
    assert logged["test_n_trades"] >= 0
    assert run.data.tags["data_fingerprint"]
    artifacts = store.artifacts(run.info.run_id)
    assert artifacts >= PLOTS | {"report/dataset.json", "report/cleaning.json", "config/config.yaml"}

    model_path = Path(run.data.tags["model_path"])
    assert model_path.is_file() and model_path.is_relative_to(Path(str(cfg.paths.models)))
    pipe = MLPipeline.load(model_path)
    assert pipe.model_type == cfg.model.type
    data = build_dataset(cfg, Console(quiet=True))
    test = data.splits[2]
    assert len(data.y[test]) == logged["n_test"]
    proba = pipe.predict_proba(data.take(test))
    assert proba.shape == (len(data.y[test]), data.n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert float(np.mean(proba.argmax(axis=1) == data.y[test])) == pytest.approx(logged["test_accuracy"])
    return run


def test_lstm_5m_smoke_through_the_cli(run_engine, compose, store: Store, engine_root: Path) -> None:
    import mlflow

    proc = run_engine("+experiment=lstm_5m", "smoke=true", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done fit" in proc.stderr and "test_sharpe=" in proc.stderr
    cfg = compose(["+experiment=lstm_5m", "smoke=true"])
    run = _check_run(store, cfg)
    assert cfg.task.bar_size == "M5" and run.data.params["model.type"] == "lstm"
    # smoke caps the epochs at task.smoke_max_epochs; Lightning logged into the same run
    assert run.data.metrics["fit/epochs_run"] <= cfg.task.smoke_max_epochs
    assert "val/loss" in run.data.metrics and "train/loss" in run.data.metrics
    # the MLflow model flavour serves the same probabilities as the saved artifact
    (logged_model,) = store.client.search_logged_models([run.info.experiment_id])
    assert logged_model.source_run_id == run.info.run_id
    from engine.models.pipeline import MLPipeline

    pipe = MLPipeline.load(run.data.tags["model_path"])
    windows = np.random.default_rng(0).normal(size=(4, cfg.model.seq_len, len(pipe.feature_names_)))
    mlflow.set_tracking_uri(f"sqlite:///{engine_root}/mlflow.db")
    served = mlflow.pyfunc.load_model(logged_model.model_uri).predict(windows.astype("float32"))
    np.testing.assert_allclose(np.asarray(served, dtype="float64"), pipe.predict_proba(windows.astype("float32")),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("experiment", IN_PROCESS)
def test_experiment_smoke_in_process(compose_job, store: Store, experiment: str) -> None:
    cfg, metrics = _train(compose_job, [f"+experiment={experiment}", *FAST])
    _check_run(store, cfg, metrics)
    assert cfg.task.objective in metrics
    # every name check_objective accepts for the val/test spans is really returned
    from engine.metrics import METRIC_NAMES
    from engine.trading.backtest import METRIC_NAMES as TRADING

    assert {f"{s}_{m}" for s in ("val", "test") for m in (*METRIC_NAMES, *TRADING)} <= set(metrics)


def test_three_class_labels_trade_on_up_and_down_probabilities(compose_job, store: Store) -> None:
    cfg, metrics = _train(compose_job, ["+experiment=rf_15m", "labels=ternary", *FAST])
    assert cfg.labels.kind == "ternary"
    _check_run(store, cfg, metrics)  # also checks the saved model returns 3 class probabilities


@pytest.mark.parametrize("experiment", EXPLAINED)
def test_explain_logs_a_shap_summary_of_the_saved_model(compose_job, store: Store, experiment: str) -> None:
    from engine.tasks import explain

    # shorter windows keep the net's case quick; the explain run must rebuild the very same dataset
    extra = ["model.seq_len=16"] if experiment == "cnn1d_5m" else []
    cfg, metrics = _train(compose_job, [f"+experiment={experiment}", *extra, *FAST])
    _check_run(store, cfg, metrics)
    ecfg = compose_job([f"+experiment={experiment}", *extra, "smoke=true", "task=explain", "task.max_samples=40"])
    validate(ecfg)
    out = explain.run(ecfg)
    assert out["n_explained"] == 40
    (run,) = [r for r in store.runs(str(cfg.tracking.experiment)) if r.data.tags.get("task") == "explain"]
    assert run.info.status == "FINISHED"
    assert {"shap_summary_test.png", "report/shap_test.csv"} <= store.artifacts(run.info.run_id)
    table = store.text(run.info.run_id, "report/shap_test.csv").splitlines()
    from engine.models.pipeline import MLPipeline

    features = MLPipeline.load(run.data.tags["model_path"]).feature_names_
    assert len(table) - 1 == len(features)  # one row per model feature (plus the header)
    assert {line.split(",")[0] for line in table[1:]} == set(features)
    values = [float(line.split(",")[1]) for line in table[1:]]
    assert values == sorted(values, reverse=True) and values[0] > 0


def test_explain_without_a_saved_model_says_how_to_get_one(compose) -> None:
    from engine.tasks import explain

    cfg = compose(["+experiment=rf_15m", "smoke=true", "task=explain"])
    with pytest.raises(ConfigError, match=r"task\.model_path.*train one first"):
        explain.run(cfg)


def test_train_without_experiment_uses_the_default_model(compose) -> None:
    cfg = compose(["task=train"])
    validate(cfg)
    # issue 16: the default trainer takes a GPU when CUDA is present and the CPU otherwise
    assert cfg.model.type == "xgboost" and cfg.trainer.accelerator == "auto" and cfg.task.objective == "val_sharpe"


def test_feature_timeframe_must_match_the_bar_size(compose_job) -> None:
    from engine.tasks import train

    cfg = compose_job(["+experiment=lstm_5m", "smoke=true", "features.timeframes=[1min,5min]", "tracking=off"])
    with pytest.raises(ConfigError, match=r"features\.timeframes.*M5"):
        train.run(cfg)


@pytest.mark.parametrize(("override", "key"), [
    ("backtest.long_threshold=1.5", "backtest.long_threshold"),
    ("backtest.spread_bps=-1", "backtest.spread_bps"),
    ("task.test_frac=0.6", "task.test_frac"),
    ("task.bar_size=M7", "task.bar_size"),
    ("model.params.nhead=5", "model.params.nhead"),
])
def test_bad_values_fail_validation_naming_the_key(compose, override: str, key: str) -> None:
    cfg = compose(["+experiment=transformer_5m", override])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.key == key


def test_unknown_objective_is_refused_before_any_work(compose_job) -> None:
    from engine.tasks import train

    cfg = compose_job(["+experiment=xgb_1m", "task.objective=val_sharp", "tracking=off"])
    with pytest.raises(ConfigError, match=r"task\.objective.*val_sharp"):
        train.run(cfg)


def test_test_span_objective_is_refused(compose_job) -> None:
    from engine.tasks import train

    cfg = compose_job(["+experiment=xgb_1m", "task.objective=test_sharpe", "tracking=off"])
    with pytest.raises(ConfigError, match=r"task\.objective.*held-out test span.*val_sharpe"):
        train.run(cfg)


def test_misspelt_hyperparameter_fails_composition(compose) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="hidden_dimm"):
        compose(["+experiment=lstm_5m", "model.params.hidden_dimm=8"])


def test_report_steps_match_the_schema() -> None:
    from engine.config.groups.task import REPORT_STEPS
    from engine.tasks.reporting import STEPS

    assert set(STEPS) == set(REPORT_STEPS)


def test_dvc_track_versions_the_saved_model(compose_job, engine_root: Path) -> None:
    import hashlib
    import subprocess
    import sys

    from engine.tasks import train

    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=engine_root, check=True, timeout=120)
    cfg = compose_job(["+experiment=rf_15m", "smoke=true", "tracking=off", "task.dvc_track=true"])
    train.run(cfg)
    artifact = engine_root / "models" / "rf_15m" / "pipeline.zip"
    meta = artifact.with_name("pipeline.zip.dvc").read_text()
    assert hashlib.md5(artifact.read_bytes()).hexdigest() in meta  # DVC's content hash of this very file
