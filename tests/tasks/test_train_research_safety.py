"""Lookahead guards of research training: the dataset task=train and task=explain build from config
(``engine.tasks.model_wiring.build_dataset``), the embargo between the spans a run trains and judges on,
and the next-open evaluation of its signals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from engine.errors import ConfigError
from tests.tasks.conftest import Store

QUIET = Console(quiet=True)


def test_a_cleaner_that_judges_bars_with_later_bars_is_refused(compose_job) -> None:
    from engine.tasks.model_wiring import build_dataset

    cfg = compose_job(["+experiment=xgb_1m", "smoke=true", "tracking=off", "cleaner.causal=false"])
    with pytest.raises(ConfigError) as err:
        build_dataset(cfg, QUIET)
    assert err.value.key == "cleaner.causal"


@pytest.mark.parametrize(("end", "last_complete"), [
    ("2024-03-31T23:57:00Z", "2024-03-31 23:50"),  # data ends two minutes into the 23:55 bar
    ("2024-03-31T23:55:00Z", "2024-03-31 23:50"),  # data ends exactly on a bar boundary
])
def test_resampled_bars_end_with_the_last_complete_bar(compose_job, end: str, last_complete: str) -> None:
    from engine.config.build import build
    from engine.data.cleaning import DataCleaner
    from engine.sources.csv import CsvBarSource
    from engine.tasks.model_wiring import build_dataset

    cfg = compose_job(["+experiment=lstm_5m", "smoke=true", "tracking=off", f"source.end='{end}'"])
    data = build_dataset(cfg, QUIET)
    raw = build(cfg.source, CsvBarSource, key="source").load_bars("BTCUSD", "M1")
    assert raw.index[-1] == pd.Timestamp(end) - pd.Timedelta(minutes=1)
    assert build(cfg.cleaner, DataCleaner, key="cleaner").causal
    stamp = pd.Timestamp(last_complete, tz="UTC")
    # a bar whose minutes are not all in yet is not a bar: its close is not the 5-minute close, and a
    # label reaching it would be the return to some minute inside the bar
    assert data.bars.index[-1] == stamp
    assert data.bars["close"].iloc[-1] == raw.loc[stamp + pd.Timedelta(minutes=4), "close"]


def test_a_training_run_keeps_the_label_horizon_between_its_spans(compose_job, store: Store) -> None:
    from engine.tasks import train

    horizon = 6
    # asking for no embargo must not let training labels reach into the validation or test span
    cfg = compose_job(["+experiment=rf_15m", "smoke=true", "task.embargo=0", f"labels.horizon={horizon}",
                       "model.params.n_estimators=20", "task.report=[]", "task.save_model=false"])
    metrics = train.run(cfg)
    (run,) = store.runs("rf_15m")
    recorded = json.loads(store.text(run.info.run_id, "report/dataset.json"))
    (train_start, train_stop), (val_start, val_stop), (test_start, test_stop) = (
        recorded["samples"][name] for name in ("train", "val", "test"))
    assert val_start - train_stop >= horizon and test_start - val_stop >= horizon
    # in time as well: the closes the last training label reads all precede the first validation decision
    bar = pd.Timedelta(minutes=15)
    spans = {name: [pd.Timestamp(t) for t in bounds] for name, bounds in recorded["spans"].items()}
    assert spans["train"][1] + horizon * bar < spans["val"][0]
    assert spans["val"][1] + horizon * bar < spans["test"][0]
    # and the model was fitted and validated on exactly those spans
    assert metrics["n_train"] == train_stop - train_start == metrics["fit_train_samples"]
    assert metrics["n_val"] == val_stop - val_start == metrics["fit_val_samples"]
    assert metrics["n_test"] == test_stop - test_start


class AlwaysUp:
    """A model that always predicts "up" with 90%: every sample signals long."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.tile([0.1, 0.9], (len(X), 1))


def test_training_evaluation_earns_from_the_next_open_not_the_signal_bars_close() -> None:
    from engine import timeframes
    from engine.data.dataset import Dataset, Splits
    from engine.tasks.train import evaluate
    from engine.trading.backtest import BacktestSettings

    idx = pd.date_range("2024-01-01", periods=6, freq="15min", tz="UTC", name="timestamp")
    opens = np.array([100.0, 110.0, 120.0, 130.0, 140.0, 150.0])
    closes = np.array([105.0, 200.0, 50.0, 300.0, 10.0, 155.0])  # no close equals the next open
    bars = pd.DataFrame({"open": opens, "high": np.maximum(opens, closes), "low": np.minimum(opens, closes),
                         "close": closes, "volume": 1.0}, index=idx)
    data = Dataset(bars=bars, X=pd.DataFrame({"f": np.zeros(6)}, index=idx), y=np.array([1, 0, 1, 0, 1, 0]),
                   index=idx, feature_names=["f"], splits=Splits(slice(0, 1), slice(1, 2), slice(2, 6)), horizon=1,
                   n_classes=2, timeframe=timeframes.parse("M15"), embargo=1, clean_report={}, fingerprint="-")
    free = BacktestSettings(spread_bps=0.0, commission_bps=0.0, slippage_bps=0.0)
    metrics, _, result = evaluate(AlwaysUp(), data, data.splits.test, "test", free)
    # long from bar 3's open (the signal of bar 2 is decided at its close), held to the end: open 130 -> 155
    assert result.frame["position"].tolist() == [0.0, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(result.frame["price_return"].to_numpy()[:-1], opens[3:] / opens[2:-1] - 1.0)
    assert metrics["test_total_return"] == pytest.approx(155.0 / 130.0 - 1.0)
