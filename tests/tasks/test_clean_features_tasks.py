"""task=clean and task=features store the dataset's first two steps as Parquet; task=train reads them back
(task.features_from) into exactly the dataset it would compute from the source, refuses stored files made
with another recipe, writes its metrics as JSON, and checks task.dvc_track before any work.

In-process through the compose API on a week of the bundled sample (10,080 one-minute bars), tracking off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from engine.config.validate import validate
from engine.errors import ConfigError, DataQualityError, OperationalError
from engine.tasks.stage_data import META_KEY

WEEK = ["source.start=2024-03-25", "tracking.enabled=false"]
STORED = "task.features_from=${paths.features}"
QUICK_TRAIN = ["task.report=[]", "task.log_model=false", "model.params.n_estimators=20"]
# Bars resampled to 5 minutes before cleaning, features from 5-minute bars, LSTM windows of 32 samples.
M5 = ["features.timeframes=[5min,15min]"]


def _run(compose, task: str, overrides: list[str]) -> dict[str, float]:
    import importlib

    cfg = compose([f"task={task}", *WEEK, *overrides])
    validate(cfg)
    return importlib.import_module(f"engine.tasks.{task}").run(cfg)


def _dataset(compose, overrides: list[str]):
    from engine.tasks.model_wiring import build_dataset

    cfg = compose(["task=train", *WEEK, *overrides])
    validate(cfg)
    return build_dataset(cfg, Console(quiet=True))


def _assert_same_dataset(stored, computed) -> None:
    if isinstance(computed.X, pd.DataFrame):
        pd.testing.assert_frame_equal(stored.X, computed.X, check_exact=True)
    else:
        np.testing.assert_array_equal(stored.X, computed.X)
    np.testing.assert_array_equal(stored.y, computed.y)
    pd.testing.assert_index_equal(stored.index, computed.index, exact=True)
    pd.testing.assert_frame_equal(stored.bars, computed.bars, check_exact=True, check_freq=False)
    assert stored.feature_names == computed.feature_names
    assert stored.splits == computed.splits and stored.embargo == computed.embargo
    assert stored.timeframe == computed.timeframe and stored.n_classes == computed.n_classes
    assert stored.clean_report == computed.clean_report
    assert stored.fingerprint == computed.fingerprint  # of the raw bars cleaning started from


@pytest.mark.parametrize(("clean", "train"), [
    ([], []),
    (["task.bar_size=M5"], ["task.bar_size=M5", *M5, "model=lstm"]),
], ids=["M1-rows", "M5-lstm-windows"])
def test_stored_steps_give_the_dataset_train_computes(compose, engine_root: Path, clean: list[str],
                                                      train: list[str]) -> None:
    _run(compose, "prepare", [])
    cleaned = _run(compose, "clean", clean)
    bar = "M5" if clean else "M1"
    clean_file = engine_root / "data" / "clean" / f"BTCUSD_{bar}.parquet"
    assert pq.read_table(clean_file).num_rows == cleaned["rows"] > 0
    _run(compose, "features", M5 if clean else [])
    features_file = engine_root / "data" / "features" / f"BTCUSD_{bar}.parquet"
    table = pq.read_table(features_file)
    assert META_KEY in table.schema.metadata and {"open", "close"} <= set(table.column_names)

    stored = _dataset(compose, [*train, STORED])
    assert str(features_file) in stored.source
    computed = _dataset(compose, train)  # bars from the bundled CSV, every step in memory
    assert "csv" in computed.source
    _assert_same_dataset(stored, computed)


def test_train_on_stored_features_returns_the_same_metrics_and_writes_them_as_json(compose,
                                                                                   engine_root: Path) -> None:
    import json

    for task in ("prepare", "clean", "features"):
        _run(compose, task, [])
    stored = _run(compose, "train", [*QUICK_TRAIN, STORED, "task.metrics_path=metrics/train.json"])
    computed = _run(compose, "train", QUICK_TRAIN)
    same = set(stored) - {"fit_seconds"}
    assert same and {k: stored[k] for k in same} == pytest.approx({k: computed[k] for k in same}, nan_ok=True)
    written = json.loads((engine_root / "metrics" / "train.json").read_text())
    assert written.keys() == stored.keys()
    assert all(written[k] == pytest.approx(v) for k, v in stored.items() if np.isfinite(v))


def test_stored_files_of_another_recipe_or_bar_size_are_refused(compose, engine_root: Path) -> None:
    for task in ("prepare", "clean", "features"):
        _run(compose, task, [])
    with pytest.raises(ConfigError, match=r"task\.features_from: .*BTCUSD_M1\.parquet was made with "
                                          r"features\.atr=\[14\] \(this run: \[7\]\).*run task=features"):
        _dataset(compose, [STORED, "features.atr=[7]"])
    with pytest.raises(ConfigError, match=r"cleaner\.zscore=500\.0 \(this run: 50\.0\)"):
        _dataset(compose, [STORED, "cleaner.zscore=50"])
    with pytest.raises(OperationalError, match=r"BTCUSD_M5\.parquet not found \(.* holds BTCUSD_M1\.parquet\): "
                                               r"run task=features \(and task=clean before it with "
                                               r"task\.bar_size=M5\)"):
        _dataset(compose, [STORED, "task.bar_size=M5", *M5])


def test_each_step_says_which_step_to_run_first(compose, engine_root: Path) -> None:
    with pytest.raises(DataQualityError, match=r"holds no BTCUSD M1 bars: run task=prepare first"):
        _run(compose, "clean", [])
    with pytest.raises(OperationalError, match=r"BTCUSD_M5\.parquet not found .*run task=clean "
                                               r"task\.bar_size=M5 first"):
        _run(compose, "features", M5)
    assert not (engine_root / "data" / "clean").exists() and not (engine_root / "data" / "features").exists()


def test_a_non_causal_cleaner_is_refused_before_cleaning(compose, engine_root: Path) -> None:
    _run(compose, "prepare", [])
    with pytest.raises(ConfigError, match=r"cleaner\.causal"):
        _run(compose, "clean", ["cleaner.causal=false"])
    assert not (engine_root / "data" / "clean").exists()


def test_dvc_track_is_checked_before_any_work(run_engine, engine_root: Path) -> None:
    proc = run_engine("task=train", "task.dvc_track=true", timeout=300)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("engine: DVCUnavailableError: no DVC repository at or above ") and "dvc init" in last
    # nothing was started: no MLflow store, no data read, no model folder
    assert not (engine_root / "mlflow.db").exists() and not (engine_root / "models").exists()
    assert "load bars" not in proc.stderr
